import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { STORE_KINDS } from '../../test/support/stores.ts';
import type { KeyEvent } from './context.ts';
import { keystoreOnStore, rejection, eventsOf } from './keystore.fixtures.ts';

describe.each(STORE_KINDS)('keystore revoke on the %s store', (kind) => {
  const fixture = keystoreOnStore(kind);
  const { keystore, rows, row, kidsIn, db } = fixture;

  it('revoke of the current key: no longer published, private key erased, a new current key signs', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    const second = (await keys.rotateNow()).find((event) => event.event === 'key.promoted')!.kid;

    const events = await keys.revoke(second);
    expect(events.map((event) => event.event)).toEqual(['key.revoked', 'key.created']);
    expect(events[0]).toMatchObject({ kid: second, state: 'revoked' });
    expect(events[1]).toMatchObject({ state: 'current' });
    const third = events[1]!.kid;
    expect([first, second]).not.toContain(third);

    for (const view of [keys, keystore()]) {
      const kids = (await view.signingKeys()).jwks.keys.map((jwk) => jwk.kid);
      expect(kids).toEqual([third, first]);
    }
    const revoked = await row(second);
    expect(revoked).toMatchObject({ state: 'revoked', private_key_jwe: null, private_jwk: null, retires_at: null });
    expect(revoked?.revoked_at).toBeInstanceOf(Date);
    const listed = (await keys.list()).find((key) => key.kid === second);
    expect(listed).toMatchObject({ state: 'revoked' });
    expect(listed?.revokedAt).toBeInstanceOf(Date);
    expect(await kidsIn('current')).toEqual([third]);
  });

  it('revoke of the current key while a next key waits promotes that key', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    await sql`update signing_keys set activates_at = now() - interval '3590 seconds' where kid = ${first}`.execute(db());
    const [created] = await keys.rotateIfDue();
    expect(created).toMatchObject({ event: 'key.created', state: 'next' });

    expect(eventsOf(await keys.revoke(first))).toEqual([`key.revoked ${first}`, `key.promoted ${created!.kid}`]);
    expect((await keys.signingKeys()).jwks.keys.map((jwk) => [jwk.kid, jwk.key_ops])).toEqual([[created!.kid, undefined]]);
  });

  it('revoke of an unknown or already revoked kid fails with ERR_KEY_NOT_FOUND and changes nothing', async () => {
    const keys = keystore();
    const [{ kid }] = (await keys.open()) as [KeyEvent];
    const unknown = await rejection(keys.revoke('no-such-kid'));
    expect(unknown.code).toBe('ERR_KEY_NOT_FOUND');
    expect(unknown.message).toContain('no-such-kid');
    expect((await rows()).map((r) => [r.kid, r.state])).toEqual([[kid, 'current']]);

    await keys.revoke(kid);
    const before = await rows();
    expect((await rejection(keys.revoke(kid))).code).toBe('ERR_KEY_NOT_FOUND');
    expect(await rows()).toEqual(before);
  });
});
