// Copies the app page and its static files next to the compiled main process (dist/electron).
import { copyFile, mkdir } from 'node:fs/promises';

const from = new URL('../electron/', import.meta.url);
const to = new URL('../dist/electron/', import.meta.url);
await mkdir(to, { recursive: true });
for (const file of ['app.html', 'app.css', 'renderer.js']) await copyFile(new URL(file, from), new URL(file, to));
