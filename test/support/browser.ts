import { CookieJar } from 'tough-cookie';

export interface BrowserResponse {
  status: number;
  url: string;
  location: string | undefined;
  headers: Headers;
  body: string;
}

/**
 * A minimal user agent for protocol tests: a real cookie jar (paths, expiry) over real HTTP, with
 * redirects followed one by one so a test can stop at the relying party's callback.
 */
export class Browser {
  readonly jar = new CookieJar();

  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<BrowserResponse> {
    const headers = new Headers(init.headers);
    const cookie = await this.jar.getCookieString(url);
    if (cookie) headers.set('cookie', cookie);
    let body: string | undefined;
    if (init.form) {
      headers.set('content-type', 'application/x-www-form-urlencoded');
      body = new URLSearchParams(init.form).toString();
    }
    const response = await this.send(url, { method: init.method ?? (init.form ? 'POST' : 'GET'), headers, redirect: 'manual', ...(body === undefined ? {} : { body }) });
    for (const setCookie of response.headers.getSetCookie()) await this.jar.setCookie(setCookie, url);
    const location = response.headers.get('location');
    return {
      status: response.status,
      url,
      location: location ? new URL(location, url).toString() : undefined,
      headers: response.headers,
      body: await response.text(),
    };
  }

  /** Sends one request; a subclass may route it another way (through a proxy, say). */
  protected send(url: string, init: RequestInit): Promise<Response> {
    return fetch(url, init);
  }

  /** Follows redirects until a response that is not one, or until `stopAt` is reached (not fetched). */
  async follow(url: string, stopAt?: (url: string) => boolean, init: Parameters<Browser['request']>[1] = {}): Promise<BrowserResponse> {
    let response = await this.request(url, init);
    for (let hops = 0; hops < 20; hops += 1) {
      if (response.status < 300 || response.status >= 400 || !response.location) return response;
      if (stopAt?.(response.location)) return response;
      response = await this.request(response.location);
    }
    throw new Error(`too many redirects from ${url}`);
  }
}

let addresses = 0;

/**
 * A browser with its own client address, sent as X-Forwarded-For (test servers run with
 * TRUST_PROXY=loopback), so each one has its own per-IP limits. Without an address it takes the
 * next one from 198.18.0.0/15 (RFC 2544, for testing).
 */
export class AddressedBrowser extends Browser {
  readonly ip: string;

  constructor(ip?: string) {
    super();
    addresses += 1;
    this.ip = ip ?? `198.18.${Math.floor(addresses / 250)}.${(addresses % 250) + 1}`;
  }

  override request(url: string, init: Parameters<Browser['request']>[1] = {}) {
    return super.request(url, { ...init, headers: { 'x-forwarded-for': this.ip, ...init.headers } });
  }
}

/** The value of a hidden form field in a page. */
export function hiddenField(html: string, name: string): string {
  const match = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!match?.[1]) throw new Error(`no ${name} field in page`);
  return match[1];
}

export function formAction(html: string, issuer: string): string {
  const match = /<form method="post" action="([^"]+)"/.exec(html);
  if (!match?.[1]) throw new Error('no form in page');
  return new URL(match[1].replaceAll('&amp;', '&'), issuer).toString();
}
