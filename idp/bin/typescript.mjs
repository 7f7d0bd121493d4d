// How the TypeScript sources run: `node --import ./idp/bin/typescript.mjs <entry>.ts`. Node strips the
// types itself where it can (22.18 and later, 24): the sources are erasable TypeScript
// (tsconfig.json: erasableSyntaxOnly). Older Nodes (20) compile them with tsx, which starts slower.
if (!process.features.typescript) await import('tsx');
