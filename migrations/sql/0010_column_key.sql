-- Sensitive column values (client secrets now; upstream tokens and MFA secrets when they come) are
-- sealed with AES-256-GCM under a data key, and the data key is sealed under the key-encryption key
-- (a JWE, A256GCMKW + A256GCM), like the private signing keys. `keys rewrap` re-seals only this one
-- value, atomically with the signing keys, and running servers keep the data key they opened.
ALTER TABLE keystore_settings ADD COLUMN column_key_jwe text;
