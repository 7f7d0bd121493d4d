#!/usr/bin/env node
// The CLI is TypeScript run directly; tsx registers the loader for it (as the idp bin does).
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
