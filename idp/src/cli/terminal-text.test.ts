import { describe, expect, it } from 'vitest';
import { terminalLine } from './terminal-text.ts';

describe('terminalLine', () => {
  it('shows C0 controls, DEL and C1 controls as escapes, so a line stays one line', () => {
    expect(terminalLine('a\u001b[31mred\r\nb\tc\u0000')).toBe('a\\x1b[31mred\\x0d\\x0ab\\x09c\\x00');
    expect(terminalLine('del\u007f c1\u009b\u0085')).toBe('del\\u007f c1\\u009b\\u0085');
  });

  it('shows bidi overrides, isolates and line separators as escapes', () => {
    expect(terminalLine('\u202egnp.exe \u2066x\u2069 \u202a\u2028')).toBe('\\u202egnp.exe \\u2066x\\u2069 \\u202a\\u2028');
  });

  it('leaves printable text, accents and emoji alone', () => {
    expect(terminalLine('Zoë Ångström 👩‍💻 <zoe@example.com> 50%')).toBe('Zoë Ångström 👩‍💻 <zoe@example.com> 50%');
  });

  it('keeps a JSON line valid JSON with the same value', () => {
    const value = { name: 'x\u001b[31m\u007f\u0085\u202ey', n: 1 };
    const line = terminalLine(JSON.stringify(value));
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(JSON.parse(line)).toEqual(value);
  });
});
