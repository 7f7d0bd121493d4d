/**
 * The ESLint plugins our config uses, resolved here: typescript-eslint parses with TypeScript's
 * JavaScript API, which TypeScript 7 (our compiler, at the root) no longer has, so this workspace
 * holds the 5.9 it supports, for the linter alone.
 */
export { parser as typescriptParser } from 'typescript-eslint';
export { default as importX, createNodeResolver } from 'eslint-plugin-import-x';
