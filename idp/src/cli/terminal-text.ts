/**
 * Text bound for the administrator's terminal. User-controlled strings (a sign-up name, an email, a
 * client name) reach CLI output; raw escape sequences in them could recolour, rewrite or hide lines
 * (`\x1b[2K`, `\r`), and bidi overrides could reorder what is shown. Every line the CLI writes
 * passes through `terminalLine`, which makes those characters visible instead.
 */

// C0 controls (tab and newline included: a line stays one line), DEL, C1 controls, the Unicode
// line/paragraph separators and the bidi embeddings, overrides and isolates.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function visibleEscape(char: string): string {
  const code = char.charCodeAt(0);
  // C0 as \xNN (what a terminal user recognises); the rest as \uNNNN, which is also a valid escape
  // inside a JSON string, so a JSON line stays valid JSON (JSON.stringify already escapes C0).
  return code < 0x20 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** One line of CLI output with every control, separator and bidi character shown as an escape. */
export function terminalLine(text: string): string {
  return text.replace(UNSAFE, visibleEscape);
}
