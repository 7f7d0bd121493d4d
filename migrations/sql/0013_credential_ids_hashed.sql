-- Codes, tokens and request_uris are stored under SHA-256 (base64url, unpadded) of their value and
-- without the value in the payload (adapters/src/credential-ids.ts lists the models): rehash the rows
-- written before, so tokens already issued keep working and a dump holds none of them.
UPDATE oidc_models
SET id = rtrim(translate(encode(sha256(convert_to(id, 'UTF8')), 'base64'), '+/', '-_'), '='),
    payload = payload - 'jti'
WHERE model IN (
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'ClientCredentials',
  'BackchannelAuthenticationRequest',
  'PushedAuthorizationRequest',
  'InitialAccessToken',
  'RegistrationAccessToken'
);
