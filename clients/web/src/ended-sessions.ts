import { processState } from './process-state';

/**
 * Sessions ended by back-channel logout, by provider session id (`sid`) or by user (`sub`), with when
 * they ended. Kept in this process for as long as a web session can live, then forgotten. A sign-in
 * after the logout is not affected: only sessions that began before it are ended.
 */
interface EndedSessions {
  ended: Map<string, { at: number; until: number }>;
}

const state = processState<EndedSessions>('ended-sessions', () => ({ ended: new Map() }));

export function recordEndedSession(by: { sid?: string | undefined; sub?: string | undefined }, keepSeconds: number, now = Date.now()): void {
  for (const [key, entry] of state.ended) if (entry.until <= now) state.ended.delete(key);
  const entry = { at: now, until: now + keepSeconds * 1000 };
  // A logout token with a sid ends that session only; one with just a sub ends all of the user's.
  if (by.sid) state.ended.set(`sid:${by.sid}`, entry);
  else if (by.sub) state.ended.set(`sub:${by.sub}`, entry);
}

/** Whether a web session that began at `signedInAt` (ms) was ended by a logout token since. */
export function isSessionEnded(session: { sid?: string | undefined; sub?: string | undefined; signedInAt: number }): boolean {
  for (const key of [session.sid ? `sid:${session.sid}` : undefined, session.sub ? `sub:${session.sub}` : undefined]) {
    const entry = key ? state.ended.get(key) : undefined;
    if (entry && entry.until > Date.now() && session.signedInAt <= entry.at) return true;
  }
  return false;
}
