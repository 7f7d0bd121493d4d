import { CompiledQuery, type Kysely } from 'kysely';
import type { OidcTables } from './tables.ts';

/** How old an answer to "does the database hold any?" may be when a lookup relies on it. */
export const PRESENCE_MAX_AGE_MS = 1_000;

const PRESENT_MODELS = `
SELECT m.model
FROM unnest($1::text[]) AS m(model)
WHERE EXISTS (SELECT 1 FROM oidc_models AS o WHERE o.model = m.model)`;

/**
 * Whether the database holds any row of the models kept in Redis first (storage.ts). They reach
 * the database only while Redis does not answer, so it almost never holds any; a token that Redis
 * does not have is then not looked for there too (introspection without a hint looks a value up as an
 * access token and as a client-credentials token: one statement less per request).
 *
 * One cheap statement (an index probe per model) answers for every lookup of the next second. Rows
 * written through this handle count at once; another process's take up to a second to be seen
 * (PRESENCE_MAX_AGE_MS), and they are only written while Redis is away. A failed check counts as
 * "may hold": the lookup goes to the database as before.
 */
export class ColdPresence {
  readonly #db: Kysely<OidcTables>;
  readonly #models: string[];
  #present: Set<string> | undefined;
  #checkedAt = 0;
  #checking: Promise<void> | undefined;
  /** Models written through this handle while a check was running: that check's answer predates them. */
  #writtenDuringCheck = new Set<string>();

  constructor(db: Kysely<OidcTables>, models: Iterable<string>) {
    this.#db = db;
    this.#models = [...models];
  }

  /** Whether a lookup of `model` that Redis did not answer must also look in the database. */
  async mayHold(model: string): Promise<boolean> {
    if (this.#present === undefined || Date.now() - this.#checkedAt > PRESENCE_MAX_AGE_MS) await this.#check();
    return this.#present?.has(model) ?? true;
  }

  /** A row of `model` was written to the database through this handle. */
  wrote(model: string): void {
    this.#present?.add(model);
    if (this.#checking) this.#writtenDuringCheck.add(model);
  }

  #check(): Promise<void> {
    this.#checking ??= (async () => {
      this.#writtenDuringCheck = new Set();
      try {
        const result = await this.#db.executeQuery<{ model: string }>(CompiledQuery.raw(PRESENT_MODELS, [this.#models]));
        this.#present = new Set([...result.rows.map((row) => row.model), ...this.#writtenDuringCheck]);
        this.#checkedAt = Date.now();
      } catch {
        // Unknown: every lookup looks in the database until a check succeeds.
        this.#present = undefined;
      }
    })().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }
}

const perHandle = new WeakMap<object, ColdPresence>();

/** The one presence of a database handle: a write through any adapter over it is seen by all. */
export function coldPresenceOf(db: Kysely<OidcTables>, models: Iterable<string>): ColdPresence {
  let presence = perHandle.get(db);
  if (!presence) perHandle.set(db, (presence = new ColdPresence(db, models)));
  return presence;
}
