import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BackchannelReceiver {
  /** The URL to register as the client's backchannel_logout_uri. */
  url: string;
  /** Every logout token received, in order. */
  tokens: string[];
  server: Server;
}

/** A relying party's back-channel logout endpoint on 127.0.0.1: records each logout token, answers 200. */
export async function backchannelReceiver(): Promise<BackchannelReceiver> {
  const tokens: string[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      const token = new URLSearchParams(body).get('logout_token');
      if (token) tokens.push(token);
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/backchannel-logout`, tokens, server };
}
