import { Chalk, supportsColor, supportsColorStderr } from 'chalk';

/**
 * Colour for each stream on its own: stdout may be piped while stderr is a
 * terminal. chalk alone looks at stdout only and ignores NO_COLOR
 * (https://no-color.org), which sshvault honours, like `--no-color`.
 */
const wanted = () => !process.env.NO_COLOR;

export const paint = new Chalk({ level: wanted() && supportsColor ? supportsColor.level : 0 });
export const paintErr = new Chalk({ level: wanted() && supportsColorStderr ? supportsColorStderr.level : 0 });

export function disableColor(): void {
  paint.level = 0;
  paintErr.level = 0;
}
