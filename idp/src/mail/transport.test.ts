import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../logger.ts';
import { verificationMail } from './templates.ts';
import { createMailer } from './transport.ts';

const LINK = 'http://localhost:4000/verify-email?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { lines, log: createLogger('info', destination) };
}

describe('mail without SMTP_URL', () => {
  let dataDir: string | undefined;
  afterEach(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('writes a .eml file with a plain-text and an HTML part under DATA_DIR/mail, and logs its links only when told to', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'jobswipe-mail-'));
    for (const logLinks of [true, false]) {
      const { lines, log } = capture();
      await createMailer({ smtpUrl: undefined, from: 'JobSwipe <no-reply@example.com>', dataDir, logLinks }, log).send(verificationMail('ada@example.com', 'Ada', LINK));
      expect(lines.join('\n').includes(LINK)).toBe(logLinks);
    }
    const files = await readdir(join(dataDir, 'mail'));
    expect(files).toHaveLength(2);
    expect(files.every((file) => file.endsWith('.eml'))).toBe(true);
    const message = await readFile(join(dataDir, 'mail', files[0]!), 'utf8');
    expect(message).toContain('To: ada@example.com');
    expect(message).toContain('Subject: Verify your JobSwipe email address');
    expect(message).toContain('text/plain');
    expect(message).toContain('text/html');
  });

  it('escapes what a user typed in the HTML part', () => {
    const mail = verificationMail('x@example.com', '<script>alert(1)</script>', LINK);
    expect(mail.html).not.toContain('<script>');
    expect(mail.html).toContain('&lt;script&gt;');
  });
});

describe('mail files under umask 000', () => {
  it('the mail directory is 0700 and each .eml file 0600', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'jobswipe-mail-mode-'));
    const previous = process.umask(0);
    try {
      const { log } = capture();
      await createMailer({ smtpUrl: undefined, from: 'JobSwipe <no-reply@example.com>', dataDir: join(parent, 'data'), logLinks: false }, log).send(
        verificationMail('ada@example.com', 'Ada', LINK),
      );
      const directory = join(parent, 'data', 'mail');
      expect(((await stat(directory)).mode & 0o777).toString(8)).toBe('700');
      const [file] = await readdir(directory);
      expect(((await stat(join(directory, file!))).mode & 0o777).toString(8)).toBe('600');
    } finally {
      process.umask(previous);
      await rm(parent, { recursive: true, force: true });
    }
  });
});
