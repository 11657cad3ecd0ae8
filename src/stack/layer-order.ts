/**
 * One top-first order for the layer kinds of every engine. Engines share
 * kinds (both use a loop device, above dm-crypt in one and below nbdfuse in
 * the other), so each kind appears once, and in an order every engine's own
 * order agrees with: a dead run's leftovers are then torn down top first
 * whichever engine left them. Ties go to the engine listed first.
 */
export function layersTopFirst<T>(chains: readonly (readonly T[])[]): T[] {
  const rest = chains.map((c) => [...c]);
  const out: T[] = [];
  while (rest.some((c) => c.length)) {
    const next = rest.map((c) => c[0]).find((head) => head !== undefined && rest.every((c) => c.indexOf(head) <= 0));
    if (next === undefined) throw new Error('the engines stack their layers in contradicting orders; no teardown order suits them all');
    out.push(next);
    for (const c of rest) if (c[0] === next) c.shift();
  }
  return out;
}
