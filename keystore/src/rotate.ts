import type { KeyEvent, KeystoreContext } from './context.ts';
import { sealPrivateKey } from './envelope.ts';
import { generateSigningKey, type GeneratedKey } from './generate.ts';
import { nextActivation, planRotation, type Transition } from './lifecycle.ts';
import { withKeystoreLock } from './lock.ts';
import { databaseClock, databaseNow, deleteKey, insertKey, promoteKey, readKeys, retireKey, type KeystoreDb } from './queries.ts';

interface PreparedKey {
  key: GeneratedKey;
  envelope: string;
}

/** A new key pair, its private half sealed: from a tenth of a second to seconds on a busy machine. */
async function prepareKey(context: KeystoreContext): Promise<PreparedKey> {
  const key = await generateSigningKey();
  return { key, envelope: await sealPrivateKey(key.privateJwk, key.kid, context.kek) };
}

async function storeKey(context: KeystoreContext, trx: KeystoreDb, { key, envelope }: PreparedKey, state: 'current' | 'next', activatesAt: Date): Promise<KeyEvent> {
  await insertKey(trx, { kid: key.kid, state, publicJwk: key.publicJwk, envelope, activatesAt });
  context.opened.set(key.kid, key.privateJwk);
  return { event: 'key.created', kid: key.kid, state, activatesAt };
}

async function createKey(context: KeystoreContext, trx: KeystoreDb, state: 'current' | 'next', activatesAt: Date): Promise<KeyEvent> {
  return storeKey(context, trx, await prepareKey(context), state, activatesAt);
}

/**
 * The scheduled next key. Other processes see it only when the transaction commits, after the key
 * was generated: its activation is measured from when it is written (the database clock then), not
 * from when the transaction began, so that every process publishes it for the whole prepublication
 * window however long the generation took.
 */
async function createNextKey(context: KeystoreContext, trx: KeystoreDb, due: Date): Promise<KeyEvent> {
  const prepared = await prepareKey(context);
  return storeKey(context, trx, prepared, 'next', nextActivation(due, await databaseClock(trx), context.policy));
}

/** Applies the planner's transitions, in order; `now` is the database clock. */
async function apply(context: KeystoreContext, trx: KeystoreDb, transitions: Transition[], now: Date): Promise<KeyEvent[]> {
  const events: KeyEvent[] = [];
  for (const transition of transitions) {
    switch (transition.type) {
      case 'create-current':
        events.push(await createKey(context, trx, 'current', now));
        break;
      case 'create-next':
        events.push(await createNextKey(context, trx, transition.activatesAt));
        break;
      case 'promote':
        if (transition.retire) {
          await retireKey(trx, transition.retire, transition.retiresAt);
          events.push({ event: 'key.retired', kid: transition.retire, state: 'retired', retiresAt: transition.retiresAt });
        }
        await promoteKey(trx, transition.kid, now);
        events.push({ event: 'key.promoted', kid: transition.kid, state: 'current', activatesAt: now });
        break;
      case 'remove':
        await deleteKey(trx, transition.kid);
        context.opened.delete(transition.kid);
        events.push({ event: 'key.removed', kid: transition.kid });
        break;
    }
  }
  return events;
}

/** What the schedule asks for now (see planRotation), inside a transaction that holds the lock. */
export async function rotateOnSchedule(context: KeystoreContext, trx: KeystoreDb): Promise<KeyEvent[]> {
  const now = await databaseNow(trx);
  const keys = (await readKeys(trx)).filter((key) => key.state !== 'revoked');
  return apply(context, trx, planRotation(keys, now, context.policy), now);
}

/** Applies the scheduled rotation if it is due; a no-op in every process but the one holding the lock. */
export async function rotateIfDue(context: KeystoreContext): Promise<KeyEvent[]> {
  return (await withKeystoreLock(context, (trx) => rotateOnSchedule(context, trx), { wait: false })) ?? [];
}

/** The next key (created first if there is none) becomes current now. */
export async function rotateNow(context: KeystoreContext): Promise<KeyEvent[]> {
  return (await withKeystoreLock(context, async (trx) => {
    const now = await databaseNow(trx);
    const keys = await readKeys(trx);
    const current = keys.find((key) => key.state === 'current');
    const events: KeyEvent[] = [];
    let next = keys.find((key) => key.state === 'next')?.kid;
    if (!next) {
      const created = await createKey(context, trx, 'next', now);
      events.push(created);
      next = created.kid;
    }
    const retiresAt = new Date(now.getTime() + context.policy.retainSeconds * 1000);
    return [...events, ...(await apply(context, trx, [{ type: 'promote', kid: next, retire: current?.kid, retiresAt }], now))];
  }))!;
}
