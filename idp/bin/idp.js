#!/usr/bin/env node
// The CLI is TypeScript run directly; tsx registers the loader for it.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
