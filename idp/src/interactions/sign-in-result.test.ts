import { describe, expect, it } from 'vitest';
import { ACR, acrOf, loginResult, requiresMfa, satisfies, withSecondFactor } from './sign-in-result.ts';

describe('sign-in results', () => {
  it('gives the password level to one factor, password or upstream', () => {
    expect(acrOf(['pwd'])).toBe(ACR.pwd);
    expect(acrOf(['fed'])).toBe(ACR.pwd);
    expect(acrOf(['hwk'])).toBe(ACR.pwd);
  });

  it('gives the mfa level to a second factor after the first, and to a verified passkey alone', () => {
    expect(loginResult('u', withSecondFactor(['pwd'], ['otp']))).toMatchObject({ amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa });
    expect(loginResult('u', withSecondFactor(['pwd'], ['hwk', 'user']))).toMatchObject({ amr: ['pwd', 'hwk', 'user', 'mfa'], acr: ACR.mfa });
    expect(loginResult('u', withSecondFactor(['fed'], ['otp']))).toMatchObject({ amr: ['fed', 'otp', 'mfa'], acr: ACR.mfa });
    expect(loginResult('u', ['hwk', 'user'])).toMatchObject({ amr: ['hwk', 'user'], acr: ACR.mfa });
  });

  it('lists each method once, in a fixed order, with the time in seconds', () => {
    expect(loginResult('u', ['otp', 'pwd', 'pwd', 'mfa'], new Date(1_700_000_000_500))).toEqual({ accountId: 'u', amr: ['pwd', 'otp', 'mfa'], acr: ACR.mfa, ts: 1_700_000_000 });
  });

  it('insists on two factors only when acr_values names the mfa level alone', () => {
    expect(requiresMfa(ACR.mfa)).toBe(true);
    expect(requiresMfa(`other ${ACR.mfa}`)).toBe(true);
    expect(requiresMfa(`${ACR.pwd} ${ACR.mfa}`)).toBe(false);
    expect(requiresMfa(undefined)).toBe(false);
    expect(satisfies(ACR.mfa, ACR.pwd)).toBe(false);
    expect(satisfies(ACR.mfa, ACR.mfa)).toBe(true);
    expect(satisfies(ACR.pwd, ACR.pwd)).toBe(true);
    expect(satisfies(undefined, undefined)).toBe(true);
  });
});
