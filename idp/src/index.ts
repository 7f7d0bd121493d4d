export { startServer } from './server.ts';
export type { RunningServer, StartOptions } from './server.ts';
export { StartupError } from './store.ts';
