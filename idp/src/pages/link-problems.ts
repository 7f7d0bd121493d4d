import type { TokenRejection } from '../users/account-tokens.ts';

/**
 * Why a mailed link was refused, in the words every link page uses. `lifetime` is how long such links
 * work ("links work for 24 hours"); `replacedBy` names what spends the older links, when something does.
 */
export function whyLinkFailed(reason: TokenRejection, options: { lifetime: string; replacedBy?: string }): string {
  if (reason === 'used') return options.replacedBy ? `This link was already used, or a newer ${options.replacedBy} replaced it.` : 'This link was already used.';
  if (reason === 'expired') return `This link has expired (${options.lifetime}).`;
  return 'This link is not valid.';
}
