/** Plain-words explanations of OAuth errors shown on the provider's error page. */
const MESSAGES: Record<string, { title: string; message: string }> = {
  invalid_client: {
    title: 'Unknown app',
    message: 'The app that sent you here is not registered with JobSwipe. Go back to the app and try again, or contact its support.',
  },
  invalid_redirect_uri: {
    title: 'Unexpected return address',
    message: 'The app asked to send you back to an address it has not registered, so we stopped here to protect your account. Contact the app\u2019s support.',
  },
  invalid_request: {
    title: 'Something is wrong with this sign-in request',
    message: 'The app sent an incomplete or malformed request. Go back to the app and start signing in again.',
  },
  session_not_found: {
    title: 'This sign-in page has expired',
    message: 'Sign-in pages are valid for a limited time and in the browser that opened them. Go back to the app and start signing in again.',
  },
  temporarily_unavailable: {
    title: 'Sign-in is briefly unavailable',
    message: 'JobSwipe could not reach one of its services. Nothing was lost: wait a minute, then go back to the app and try again.',
  },
  access_denied: {
    title: 'Access denied',
    message: 'The request was refused. Go back to the app and try again.',
  },
};

const FALLBACK = {
  title: 'Something went wrong',
  message: 'We could not complete this request. Go back to the app and try again; if it keeps happening, contact support with the reference below.',
};

export function describeProviderError(code: string): { title: string; message: string } {
  return MESSAGES[code] ?? FALLBACK;
}
