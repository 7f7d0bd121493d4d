/**
 * typescript-eslint parses with TypeScript's JavaScript API, which TypeScript 7 (our compiler, at the
 * root) no longer has: this workspace holds the 5.9 it supports, for the parser alone.
 */
export { parser as typescriptParser } from 'typescript-eslint';
