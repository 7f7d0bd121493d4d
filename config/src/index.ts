export { loadConfig, ConfigError } from './load.ts';
export type { Config, ConfigProblem, RedisConfig, StoreConfig } from './load.ts';
export { renderConfigurationDoc } from './docs.ts';
export { ENVIRONMENT_VARIABLES } from './schema.ts';
