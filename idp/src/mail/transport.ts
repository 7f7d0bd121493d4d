import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import nodemailer from 'nodemailer';
import { makeDataDirectory, writeDataFile } from '../data-dir.ts';
import type { Logger } from '../logger.ts';

export interface Mail {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** The links the mail carries; logged (development only) when mails go to files. */
  links: string[];
}

export interface Mailer {
  send(mail: Mail): Promise<void>;
}

export interface MailerOptions {
  smtpUrl: string | undefined;
  from: string;
  dataDir: string;
  /** Log the links of mails written to files (development only: links are credentials). */
  logLinks: boolean;
}

/**
 * Account mails over SMTP, or without SMTP_URL as .eml files under DATA_DIR/mail/ (the embedded
 * development setup; production refuses to start without SMTP_URL).
 */
export function createMailer(options: MailerOptions, log: Logger): Mailer {
  if (options.smtpUrl) {
    const transport = nodemailer.createTransport(options.smtpUrl);
    return {
      async send(mail) {
        await transport.sendMail({ from: options.from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html });
      },
    };
  }
  const directory = join(resolve(options.dataDir), 'mail');
  const files = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  return {
    async send(mail) {
      const built = await files.sendMail({ from: options.from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html });
      await makeDataDirectory(directory);
      const file = join(directory, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}.eml`);
      await writeDataFile(file, built.message as Buffer);
      if (options.logLinks) log.info({ file, links: mail.links }, 'mail written to a file (no SMTP_URL)');
      else log.info({ file }, 'mail written to a file (no SMTP_URL)');
    },
  };
}

/**
 * Sends without waiting: pages answer before the SMTP round trip, so its time cannot tell cases
 * apart (an existing address from an unknown one). A failure is logged, never shown, never retried.
 */
export function sendInBackground(mailer: Mailer, mail: Mail, log: Logger, kind: string): void {
  mailer.send(mail).catch((error: unknown) => log.error({ err: error, mail: kind }, 'mail could not be sent'));
}
