import pg from 'pg';

/** Runs one statement as the Postgres superuser at `url` (creating and dropping databases, mostly). */
export async function adminQuery(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`Postgres is required and is not reachable at ${url}: ${(error as Error).message}`);
  }
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
