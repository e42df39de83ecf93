/**
 * Directory hashes (spec 6.5.2, Appendix G, implementation guidelines 2.5), computed the way the
 * reference implementation does: a folder's content hash is the hash of its children's content
 * hashes (files: their hash; folders: their content hash); its structure hash is the hash of, per
 * child, hash(UTF-8 name ‖ bytes of the child's hash — a file's hash, a folder's structure hash).
 * Both lists are sorted as strings before hashing, so the order of children does not matter.
 */
import { type MhlHashFormat, hashBytes, hashOf, hashOfHashes } from "./hash_format.ts";

const utf8 = new TextEncoder();

/** A folder's pair of hashes in one format. */
export interface DirectoryHashPair {
  content: string;
  structure: string;
}

/** Collects a folder's children, then gives its content and structure hashes. */
export class DirectoryHasher {
  private readonly contents: string[] = [];
  private readonly structures: Promise<string>[] = [];
  constructor(readonly format: MhlHashFormat) {}

  private named(name: string, hash: string): Promise<string> {
    const n = utf8.encode(name);
    const h = hashBytes(this.format, hash);
    const both = new Uint8Array(n.length + h.length);
    both.set(n);
    both.set(h, n.length);
    return hashOf(this.format, both);
  }

  /** A file child: its name (not path) and its hash in this format. */
  addFile(name: string, hash: string): void {
    this.contents.push(hash);
    this.structures.push(this.named(name, hash));
  }

  /** A folder child: its name and its own pair. */
  addDirectory(name: string, pair: DirectoryHashPair): void {
    this.contents.push(pair.content);
    this.structures.push(this.named(name, pair.structure));
  }

  /** The folder's pair (an empty folder hashes the empty list: the digest of no bytes). */
  async finish(): Promise<DirectoryHashPair> {
    const structures = await Promise.all(this.structures);
    return { content: await hashOfHashes(this.format, this.contents), structure: await hashOfHashes(this.format, structures) };
  }
}
