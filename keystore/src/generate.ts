import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

export const SIGNING_ALG = 'RS256';

export interface GeneratedKey {
  kid: string;
  publicJwk: JWK;
  privateJwk: JWK;
}

/** A fresh RS256 key pair; its kid is the RFC 7638 thumbprint of the public key. */
export async function generateSigningKey(modulusLength = 2048): Promise<GeneratedKey> {
  const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { modulusLength, extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const common = { kid, alg: SIGNING_ALG, use: 'sig' };
  return {
    kid,
    publicJwk: { ...publicJwk, ...common },
    privateJwk: { ...(await exportJWK(privateKey)), ...common },
  };
}
