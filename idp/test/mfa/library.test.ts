import { randomBytes } from 'node:crypto';
import { withUser } from '@jobswipe/adapters';
import type { Kysely } from 'kysely';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { STORE_KINDS } from '../../../test/support/stores.ts';
import type { MfaQueries } from '../../src/mfa/queries.ts';
import type { Totp } from '../../src/mfa/totp.ts';
import type { Tables } from '../../src/store.ts';

/*
 * The authenticator app and its rows (0019_mfa.sql) on both stores, through the running server's own
 * graph: what the browser suites cannot show in the time they have (a code of the step before, a
 * set-up that expired, two uses of one code at once, the user role's view of the tables).
 */

const PASSWORD = 'a long and good passphrase';
const codeAt = (secret: string, steps: number) => generate({ secret, epoch: Math.floor(Date.now() / 1000) + steps * 30 });

describe.each(STORE_KINDS)('authenticator app library (%s)', (kind) => {
  let idp: TestServer;
  let db: Kysely<Tables>;
  let totp: Totp;
  let queries: MfaQueries;
  let count = 0;

  const newUser = async () => {
    count += 1;
    const email = `totp${count}@example.com`;
    const { id } = await idp.createUser({ email, password: PASSWORD });
    return { id, email };
  };

  beforeAll(async () => {
    idp = await startTestServer(kind);
    db = idp.server.database.db;
    totp = idp.server.libraries.totp;
    queries = idp.server.queries.mfa;
  }, 120_000);

  afterAll(async () => {
    await idp?.stop();
  });

  it('turns on with a code of the step before, now or after, not two away; the secret is sealed to its user', async () => {
    const user = await newUser();
    const { secret } = await totp.beginSetup(user);
    expect(await totp.enable(user, await codeAt(secret, -2))).toBeUndefined();
    expect(await totp.enabled(user.id)).toBe(false);
    expect(await totp.enable(user, await codeAt(secret, -1))).toHaveLength(10);
    expect(await totp.enabled(user.id)).toBe(true);
    // A second set-up does not replace an app that is on.
    await expect(totp.beginSetup(user)).rejects.toThrow('already on');

    // The sealed secret moved to another user's row does not open there: no code is right for it.
    const other = await newUser();
    const row = await db.selectFrom('totp_factors').select('secret_sealed').where('user_id', '=', user.id).executeTakeFirstOrThrow();
    await db.insertInto('totp_factors').values({ user_id: other.id, secret_sealed: row.secret_sealed, enabled_at: new Date() }).execute();
    expect(await totp.check(other.id, await codeAt(secret, 1))).toEqual({ ok: false, reason: 'wrong_code' });
    expect(await totp.check(user.id, await codeAt(secret, 1))).toEqual({ ok: true, method: 'otp' });
  });

  it('accepts each step once, forwards only: a later code spends the earlier ones; one code used twice at once signs in once', async () => {
    const user = await newUser();
    const { secret } = await totp.beginSetup(user);
    await totp.enable(user, await codeAt(secret, -1));
    expect(await totp.check(user.id, await codeAt(secret, 1))).toEqual({ ok: true, method: 'otp' });
    expect(await totp.check(user.id, await codeAt(secret, 0))).toEqual({ ok: false, reason: 'reused_code' });
    expect(await totp.check(user.id, '000000' === (await codeAt(secret, 1)) ? '111111' : '000000')).toEqual({ ok: false, reason: 'wrong_code' });

    const racer = await newUser();
    const race = await totp.beginSetup(racer);
    await totp.enable(racer, await codeAt(race.secret, -1));
    const code = await codeAt(race.secret, 0);
    const results = await Promise.all([totp.check(racer.id, code), totp.check(racer.id, code)]);
    expect(results.filter((result) => result.ok)).toHaveLength(1);
  });

  it('a set-up expires after 15 minutes; a recovery code works once, in any case, with or without dashes', async () => {
    const user = await newUser();
    const { secret } = await totp.beginSetup(user);
    await db.updateTable('totp_factors').set({ created_at: new Date(Date.now() - 16 * 60_000) }).where('user_id', '=', user.id).execute();
    expect(await totp.pendingSetup(user)).toBeUndefined();
    expect(await totp.enable(user, await codeAt(secret, 0))).toBeUndefined();

    const fresh = await totp.beginSetup(user);
    const codes = (await totp.enable(user, await codeAt(fresh.secret, 0)))!;
    expect(await totp.check(user.id, codes[0]!.replaceAll('-', '').toUpperCase())).toEqual({ ok: true, method: 'recovery_code', remaining: 9 });
    expect(await totp.check(user.id, codes[0]!)).toEqual({ ok: false, reason: 'wrong_code' });
    expect(await queries.unusedRecoveryCodes(user.id)).toBe(9);
    expect(await totp.disable(user.id)).toBe(true);
    expect(await totp.check(user.id, codes[1]!)).toEqual({ ok: false, reason: 'wrong_code' });
  });

  it('counts a user\'s factors; the user role reads its own passkey names, and neither the sealed secret nor the code hashes', async () => {
    const user = await newUser();
    const { secret } = await totp.beginSetup(user);
    await totp.enable(user, await codeAt(secret, 0));
    await queries.insertPasskey({ credentialId: `cred-${kind}`, userId: user.id, publicKey: 'AAAA', counter: 0, transports: ['internal'], name: 'Phone' });
    // What every password sign-in reads, in one query.
    expect(await queries.factorCounts(user.id)).toEqual({ totp: true, recoveryCodes: 10, passkeys: 1 });
    expect(await queries.factorCounts((await newUser()).id)).toEqual({ totp: false, recoveryCodes: 0, passkeys: 0 });
    // "Download my data" lists them, without a secret.
    const exported = await idp.server.queries.personalData.exportOf(user.id);
    expect(exported?.two_factor).toEqual({ authenticator_app_on_since: expect.any(String), recovery_codes_left: 10, passkeys: [{ name: 'Phone', added_at: expect.any(String), last_used_at: null }] });
    expect(JSON.stringify(exported)).not.toContain('AAAA');
    const names = await withUser(db, user.id, (trx) => trx.selectFrom('passkeys').select(['name', 'last_used_at']).execute());
    expect(names).toEqual([{ name: 'Phone', last_used_at: null }]);
    await expect(withUser(db, user.id, (trx) => trx.selectFrom('passkeys').select('public_key').execute())).rejects.toThrow(/permission denied/);
    await expect(withUser(db, user.id, (trx) => trx.selectFrom('totp_factors').selectAll().execute())).rejects.toThrow(/permission denied/);
    await expect(withUser(db, user.id, (trx) => trx.selectFrom('recovery_codes').selectAll().execute())).rejects.toThrow(/permission denied/);
    // A use moves the counter once; the same counter read twice moves it once.
    expect(await queries.passkeyUsed(`cred-${kind}`, 0, 5)).toBe(true);
    expect(await queries.passkeyUsed(`cred-${kind}`, 0, 5)).toBe(false);
  });
  it('spends a passkey challenge on the server: answered twice, or ten times at once, it is checked once', async () => {
    const { passkeys } = idp.server.libraries;
    const answer = JSON.stringify({ id: 'not-registered', rawId: 'not-registered', type: 'public-key', response: {} });
    const outcome = (attempt: Promise<unknown>) => attempt.then(() => 'accepted', (error: Error) => error.message);
    const challenge = () => randomBytes(32).toString('base64url');
    const SPENT = 'that challenge was answered already';

    const signIn = challenge();
    expect(await outcome(passkeys.authenticate(answer, signIn))).toBe('that passkey is not registered here');
    expect(await outcome(passkeys.authenticate(answer, signIn))).toBe(SPENT);

    const user = await newUser();
    const registration = challenge();
    expect(await outcome(passkeys.register(user.id, answer, registration, 'Laptop'))).not.toMatch(/accepted|answered already/);
    expect(await outcome(passkeys.register(user.id, answer, registration, 'Laptop'))).toBe(SPENT);
    // A challenge spent for one ceremony is spent for the other too.
    expect(await outcome(passkeys.authenticate(answer, registration))).toBe(SPENT);

    const raced = challenge();
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => outcome(passkeys.authenticate(answer, raced))));
    expect(outcomes.filter((text) => text === SPENT)).toHaveLength(9);
    expect(outcomes.filter((text) => text === 'that passkey is not registered here')).toHaveLength(1);
  });
});
