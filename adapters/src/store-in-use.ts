/** Another live process holds the embedded store in this data directory. */
export class StoreInUseError extends Error {
  readonly code = 'ERR_STORE_IN_USE';
  readonly pid: number;
  readonly dataDir: string;

  constructor(dataDir: string, pid: number) {
    super(`store in use: the embedded store in ${dataDir} is held by process ${pid}`);
    this.name = 'StoreInUseError';
    this.pid = pid;
    this.dataDir = dataDir;
  }
}
