/**
 * Target questions asked all at once. The start of a transfer looks at half a dozen target paths
 * (staging leftovers, the target and its parent) and the free space there, one after the other;
 * on a remote target each is a round trip (20 ms each over a WAN), so they are sent together and
 * answered from here, once each.
 */
import type { Endpoint, Entry, SpaceInfo } from "../endpoints/endpoint.ts";

export class StatPrefetch {
  private pending = new Map<string, Promise<Entry | null>>();
  private spaceAnswer: { path: string; answer: Promise<SpaceInfo> } | null = null;

  constructor(private readonly ep: Endpoint, paths: readonly string[], private readonly signal?: AbortSignal, spacePath?: string) {
    for (const p of new Set(paths)) this.pending.set(p, quiet(ep.stat(p, { signal })));
    if (spacePath !== undefined) this.spaceAnswer = { path: spacePath, answer: quiet(ep.space(spacePath, { signal })) };
  }

  /** The prefetched answer for `path` (used once), else a fresh stat. */
  stat(path: string): Promise<Entry | null> {
    const answer = this.pending.get(path);
    if (answer === undefined) return this.ep.stat(path, { signal: this.signal });
    this.pending.delete(path);
    return answer;
  }

  /** The prefetched free space at `path` (used once), else a fresh answer. */
  space(path: string): Promise<SpaceInfo> {
    const early = this.spaceAnswer;
    this.spaceAnswer = null;
    return early?.path === path ? early.answer : this.ep.space(path, { signal: this.signal });
  }

  /** Drops every answer not used yet: something changed the paths since they were asked. */
  forget(): void {
    this.pending.clear();
    this.spaceAnswer = null;
  }
}

/** An answer nobody asks for (the transfer failed earlier) must not become an unhandled rejection. */
function quiet<T>(answer: Promise<T>): Promise<T> {
  answer.catch(() => undefined);
  return answer;
}
