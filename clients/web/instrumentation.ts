/**
 * Runs once when the server starts (not during `next build`, so one build runs anywhere): invalid
 * settings stop the process with one line per problem instead of breaking pages later.
 */
export async function register(): Promise<void> {
  if (process.env.NEXT_RUNTIME !== 'nodejs' || process.env.NEXT_PHASE === 'phase-production-build') return;
  const { parseSettings } = await import('./src/settings');
  const result = parseSettings(process.env);
  if (!result.ok) {
    console.error('jobswipe-web: invalid settings, not starting:');
    for (const problem of result.problems) console.error(`  ${problem}`);
    process.exit(2);
  }
  // next-auth reads NEXTAUTH_URL itself; give it the default too.
  process.env.NEXTAUTH_URL = result.settings.baseUrl;
}
