import { errors, type Client, type KoaContextWithOIDC } from 'oidc-provider';

/**
 * Client metadata that registers a client as a resource server: the audiences (API resource
 * indicators) whose access tokens it may introspect. Without it a client introspects only its own tokens.
 */
export const RESOURCE_SERVER_AUDIENCES = 'resource_server_audiences';

/** Refuses anything but a list of the audiences this provider issues access tokens for. */
export function validateResourceServerAudiences(value: unknown, audiences: readonly string[]): void {
  if (value === undefined) return;
  if (!Array.isArray(value) || value.some((audience) => typeof audience !== 'string' || !audiences.includes(audience))) {
    throw new errors.InvalidClientMetadata(`${RESOURCE_SERVER_AUDIENCES} must be a list of the API resources this provider serves (${audiences.join(', ')})`);
  }
}

interface IntrospectedToken {
  kind: string;
  clientId?: string | undefined;
  aud?: string | string[] | undefined;
}

/**
 * Who gets `active: true` (else `{"active": false}`): the token's own client, or a client registered as
 * a resource server for an audience of the access token. Public clients introspect nothing.
 */
export function introspectionAllowed(client: Client, token: IntrospectedToken): boolean {
  if (client.clientAuthMethod === 'none') return false;
  if (token.clientId === client.clientId) return true;
  if (token.kind !== 'AccessToken' && token.kind !== 'ClientCredentials') return false;
  const registered = client.metadata()[RESOURCE_SERVER_AUDIENCES];
  const audiences = token.aud === undefined ? [] : [token.aud].flat();
  return Array.isArray(registered) && audiences.some((audience) => registered.includes(audience));
}

/** features.introspection.allowedPolicy */
export async function introspectionAllowedPolicy(_ctx: KoaContextWithOIDC, client: Client, token: unknown): Promise<boolean> {
  return introspectionAllowed(client, token as IntrospectedToken);
}
