import { z } from 'zod';

/** An account's email address and name as every input path accepts them (forms, admin API, CLI, upstreams). */
export const emailSchema = z.email({ error: 'is not a valid email address' }).max(320);
export const nameSchema = z.string().trim().max(200);
