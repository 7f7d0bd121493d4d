/**
 * The browser side of passkeys, served by us at /assets/passkeys.js (no CDN; the CSP admits it by
 * the page's nonce). A form with `data-passkey` carries the WebAuthn options as JSON in
 * `data-options`: on submit the script asks the browser for the credential, puts the answer (JSON,
 * binary fields in base64url) in the form's `credential` field, and posts the form. No fetch: the
 * CSP allows no connections, and the challenge stays on the server side of the form.
 */
export const PASSKEY_SCRIPT = `'use strict';
(() => {
  const toBytes = (text) => {
    const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  };
  const toText = (buffer) => {
    let binary = '';
    for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
  };
  const descriptors = (list) => (list || []).map((item) => ({ ...item, id: toBytes(item.id) }));
  // A credential as the server reads it (the JSON of WebAuthn Level 3's toJSON), with its ceremony's own response fields.
  const asJson = (credential, fields) => ({
    id: credential.id,
    rawId: toText(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: { clientDataJSON: toText(credential.response.clientDataJSON), ...fields },
  });

  async function register(options) {
    const publicKey = { ...options, challenge: toBytes(options.challenge), user: { ...options.user, id: toBytes(options.user.id) }, excludeCredentials: descriptors(options.excludeCredentials) };
    const credential = await navigator.credentials.create({ publicKey });
    const response = credential.response;
    return asJson(credential, {
      attestationObject: toText(response.attestationObject),
      transports: typeof response.getTransports === 'function' ? response.getTransports() : [],
    });
  }

  async function authenticate(options) {
    const publicKey = { ...options, challenge: toBytes(options.challenge), allowCredentials: descriptors(options.allowCredentials) };
    const credential = await navigator.credentials.get({ publicKey });
    const response = credential.response;
    return asJson(credential, {
      authenticatorData: toText(response.authenticatorData),
      signature: toText(response.signature),
      userHandle: response.userHandle ? toText(response.userHandle) : undefined,
    });
  }

  for (const form of document.querySelectorAll('form[data-passkey]')) {
    const error = form.querySelector('[data-passkey-error]');
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (error) error.hidden = true;
      try {
        if (!window.PublicKeyCredential) throw new Error('This browser cannot use passkeys.');
        const options = JSON.parse(form.dataset.options);
        const answer = form.dataset.passkey === 'register' ? await register(options) : await authenticate(options);
        form.elements.credential.value = JSON.stringify(answer);
        form.submit();
      } catch (failure) {
        if (error) {
          error.textContent = failure && failure.name === 'NotAllowedError' ? 'No passkey was used. Try again, or use another way.' : String((failure && failure.message) || failure);
          error.hidden = false;
        }
      }
    });
  }
})();
`;
