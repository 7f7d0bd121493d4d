import { writeFileSync } from 'node:fs';
import { renderConfigurationDoc } from './docs.ts';

const target = new URL('../../docs/configuration.md', import.meta.url);
writeFileSync(target, renderConfigurationDoc());
console.log(`wrote ${target.pathname}`);
