// Runs PGlite's initdb in a short-lived child process: initdb grows the WebAssembly heap to about
// 750 MB, and a heap never shrinks, so the server then opens the finished cluster at a fraction of that.
import { PGlite } from '@electric-sql/pglite';

// What PGlite creates without an explicit chmod is for this user alone, whatever umask the parent has.
process.umask(0o077);
const pglite = await PGlite.create(process.argv[2]);
await pglite.close();
