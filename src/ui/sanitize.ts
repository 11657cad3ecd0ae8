/**
 * What the remote says (owner.json fields, file names) reaches the terminal
 * only as printable text: a hostile host must not move the cursor, rewrite
 * earlier lines or reverse the text of a message with escape sequences.
 */
const ANSI = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -/]*[0-~]?)/g;
const CONTROL = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function sanitize(text: unknown): string {
  return String(text).replace(ANSI, '').replace(CONTROL, '');
}
