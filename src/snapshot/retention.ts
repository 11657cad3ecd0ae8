import { UsageError } from '../errors.js';

/**
 * Which snapshots `prune` keeps, with the semantics of restic's `forget`
 * (internal/restic/snapshot_policy.go), in UTC: walking from the newest
 * snapshot to the oldest, each rule keeps a snapshot whenever it falls in a
 * different hour/day/ISO week/month/year than the one that rule kept last,
 * until the rule's count is used up. A rule that still has count left when it
 * reaches the oldest snapshot keeps that one too, so a young vault keeps its
 * whole history. The newest snapshot is always kept: every rule keeps it.
 */
export interface RetentionPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export interface RetentionDecision<T> {
  keep: { item: T; reasons: string[] }[];
  remove: T[];
}

type Rule = keyof RetentionPolicy;

/** restic's order, which is also the order of the reasons given for a kept snapshot. */
const RULES: { rule: Rule; reason: string; bucket: (t: Date, index: number) => number }[] = [
  { rule: 'last', reason: 'last snapshot', bucket: (_t, index) => index },
  { rule: 'hourly', reason: 'hourly snapshot', bucket: (t) => ymd(t) * 100 + t.getUTCHours() },
  { rule: 'daily', reason: 'daily snapshot', bucket: ymd },
  { rule: 'weekly', reason: 'weekly snapshot', bucket: isoWeek },
  { rule: 'monthly', reason: 'monthly snapshot', bucket: (t) => t.getUTCFullYear() * 100 + t.getUTCMonth() + 1 },
  { rule: 'yearly', reason: 'yearly snapshot', bucket: (t) => t.getUTCFullYear() },
];

function ymd(t: Date): number {
  return t.getUTCFullYear() * 10000 + (t.getUTCMonth() + 1) * 100 + t.getUTCDate();
}

const DAY_MS = 86_400_000;

/** ISO 8601 week as YYYYWW: weeks start on Monday, week 1 holds the year's first Thursday. */
function isoWeek(t: Date): number {
  const day = Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate());
  const weekday = (t.getUTCDay() + 6) % 7;
  const thursday = new Date(day + (3 - weekday) * DAY_MS);
  const year = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * DAY_MS)) + 1;
  return year * 100 + week;
}

function checkedCounts(policy: RetentionPolicy): Map<Rule, number> {
  const counts = new Map<Rule, number>();
  for (const { rule } of RULES) {
    const n = policy[rule];
    if (n === undefined) continue;
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--keep-${rule} must be a whole number, not ${n}`);
    if (n > 0) counts.set(rule, n);
  }
  if (counts.size === 0) {
    throw new UsageError('prune needs at least one --keep-* rule above 0 (last, hourly, daily, weekly, monthly, yearly); without one it would remove every snapshot');
  }
  return counts;
}

function newestFirst<T extends { name: string; time: Date }>(a: T, b: T): number {
  return b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);
}

export function applyRetention<T extends { name: string; time: Date }>(snapshots: T[], policy: RetentionPolicy): RetentionDecision<T> {
  const left = checkedCounts(policy);
  const lastBucket = new Map<Rule, number>();
  const keep: RetentionDecision<T>['keep'] = [];
  const remove: T[] = [];
  const list = [...snapshots].sort(newestFirst);
  list.forEach((item, index) => {
    const oldest = index === list.length - 1;
    const reasons: string[] = [];
    for (const { rule, reason, bucket } of RULES) {
      if (!left.get(rule)) continue;
      const b = bucket(item.time, index);
      const newBucket = b !== lastBucket.get(rule);
      if (!newBucket && !oldest) continue;
      lastBucket.set(rule, b);
      left.set(rule, left.get(rule)! - 1);
      reasons.push(newBucket ? reason : `oldest ${reason}`);
    }
    if (reasons.length) keep.push({ item, reasons });
    else remove.push(item);
  });
  return { keep: keep.reverse(), remove: remove.reverse() };
}
