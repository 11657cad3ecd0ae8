import { UsageError } from '../../errors.js';
import type { Engine } from './engine.js';
import { kernelEngine } from './kernel.js';
import { userspaceEngine } from './userspace.js';

/** Every engine, the one `auto` prefers first. */
export const ENGINES: readonly Engine[] = [kernelEngine, userspaceEngine];

/** What `--engine` accepts. */
export const ENGINE_CHOICES: readonly string[] = ['auto', ...ENGINES.map((e) => e.name)];

export interface EngineDecision {
  engine: Engine;
  reason: string;
}

/**
 * The engine a run uses: the one asked for by name, refused if it cannot run
 * here; or, for `auto`, the first in the list that can, with why the ones
 * before it cannot.
 */
export async function chooseEngine(choice: string, engines: readonly Engine[] = ENGINES): Promise<EngineDecision> {
  if (choice !== 'auto') {
    const engine = engines.find((e) => e.name === choice);
    if (!engine) throw new UsageError(`there is no engine '${choice}'; use ${ENGINE_CHOICES.join(', ')}`);
    const probe = await engine.probe();
    if (!probe.ok) {
      const others = engines.filter((e) => e !== engine).map((e) => `--engine ${e.name}`);
      throw new UsageError(`the ${engine.name} engine cannot run here: ${probe.reason}; use ${others.join(' or ')}`);
    }
    return { engine, reason: `chosen with --engine ${engine.name}` };
  }
  const refused: string[] = [];
  for (const engine of engines) {
    const probe = await engine.probe();
    if (probe.ok) return { engine, reason: refused.length ? `${refused.join('; ')}, so ${probe.reason}` : probe.reason };
    refused.push(probe.reason);
  }
  throw new UsageError(`no engine can run here: ${refused.join('; ')}`);
}
