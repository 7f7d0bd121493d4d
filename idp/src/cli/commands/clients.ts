import { z } from 'zod';
import type { Command } from '../context.ts';
import { UsageError } from '../errors.ts';
import { table } from '../output.ts';
import { parse } from '../parse-args.ts';

export const CLIENTS_COMMANDS: Record<string, Command> = {
  'clients create': {
    usage:
      'clients create [--json METADATA] [--client-id ID] [--client-name NAME] [--redirect-uri URI]... ' +
      '[--post-logout-redirect-uri URI]... [--grant-type TYPE]... [--response-type TYPE]... [--scope "A B"] ' +
      '[--token-endpoint-auth-method M] [--application-type web|native] [--backchannel-logout-uri URI] [--first-party]',
    async run(context, args) {
      const values = parse(args, {
        json: { type: 'string' },
        'client-id': { type: 'string' },
        'client-name': { type: 'string' },
        'redirect-uri': { type: 'string', multiple: true },
        'post-logout-redirect-uri': { type: 'string', multiple: true },
        'grant-type': { type: 'string', multiple: true },
        'response-type': { type: 'string', multiple: true },
        scope: { type: 'string' },
        'token-endpoint-auth-method': { type: 'string' },
        'application-type': { type: 'string' },
        'backchannel-logout-uri': { type: 'string' },
        'first-party': { type: 'boolean' },
      });
      let base: Record<string, unknown> = {};
      if (values.json !== undefined) {
        const parsed = z.record(z.string(), z.unknown()).safeParse(safeJson(values.json));
        if (!parsed.success) throw new UsageError('--json must be a JSON object of client metadata');
        base = parsed.data;
      }
      const flags: Record<string, unknown> = {
        client_id: values['client-id'],
        client_name: values['client-name'],
        redirect_uris: values['redirect-uri'],
        post_logout_redirect_uris: values['post-logout-redirect-uri'],
        grant_types: values['grant-type'],
        response_types: values['response-type'],
        scope: values.scope,
        token_endpoint_auth_method: values['token-endpoint-auth-method'],
        application_type: values['application-type'],
        backchannel_logout_uri: values['backchannel-logout-uri'],
        first_party: values['first-party'],
      };
      const given: Record<string, unknown> = {
        ...base,
        ...Object.fromEntries(Object.entries(flags).filter(([, value]) => value !== undefined)),
      };
      await context.withStore(async ({ libraries: { clientAdministration } }) => {
        const { needsSecret } = await import('../../clients/registry.ts');
        const metadata = await clientAdministration.create(given);
        context.io.out(`client_id: ${metadata.client_id}`);
        if (needsSecret(metadata) && typeof metadata['client_secret'] === 'string') {
          context.io.out(`client_secret: ${metadata['client_secret']}`);
          context.io.out('The secret is shown only this once: store it now.');
        }
      });
    },
  },

  'clients list': {
    usage: 'clients list',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ libraries: { clients } }) => {
        const rows = (await clients.list()).map((client) => [
          client.client_id,
          String(client['client_name'] ?? '-'),
          String(client['application_type'] ?? 'web'),
          String(client['token_endpoint_auth_method'] ?? 'client_secret_basic'),
          ((client['grant_types'] as string[] | undefined) ?? ['authorization_code', 'refresh_token']).join(','),
          client['first_party'] === true ? 'yes' : 'no',
          ((client['redirect_uris'] as string[] | undefined) ?? []).join(' ') || '-',
        ]);
        table(['CLIENT_ID', 'NAME', 'TYPE', 'AUTH', 'GRANTS', 'FIRST_PARTY', 'REDIRECT_URIS'], rows, 'no clients').forEach(context.io.out);
      });
    },
  },
};

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError('--json is not valid JSON');
  }
}
