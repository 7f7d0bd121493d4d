#!/usr/bin/env node
// The CLI is TypeScript run directly (see typescript.mjs).
await import('./typescript.mjs');
await import('../src/cli/main.ts');
