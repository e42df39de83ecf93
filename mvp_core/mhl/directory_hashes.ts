/**
 * Directory hashes (spec 6.5.2, Appendix G, implementation guidelines 2.5), computed the way the
 * reference implementation does: a folder's content hash is the hash of its children's content
 * hashes (files: their hash; folders: their content hash); its structure hash is the hash of, per
 * child, hash(UTF-8 name ‖ bytes of the child's hash — a file's hash, a folder's structure hash).
 * Both lists are sorted as strings before hashing, so the order of children does not matter.
 */
import { type MhlHashFormat, digestFunction, hashBytes, hashOfHashes } from "./hash_format.ts";

const utf8 = new TextEncoder();

/** A folder's pair of hashes in one format. */
export interface DirectoryHashPair {
  content: string;
  structure: string;
}

/** Computes folders' pairs in one format; `start` prepares the digest function once. */
export class DirectoryHasher {
  private constructor(
    readonly format: MhlHashFormat,
    private readonly digest: (data: Uint8Array) => string,
  ) {}

  /** A hasher for `format`. */
  static async start(format: MhlHashFormat): Promise<DirectoryHasher> {
    return new DirectoryHasher(format, await digestFunction(format));
  }

  /** A new, empty folder: add its children, then finish. */
  folder(): DirectoryChildren {
    return new DirectoryChildren(this.format, this.digest);
  }
}

/** One folder's children, collected until finish() gives its pair. */
export class DirectoryChildren {
  private readonly contents: string[] = [];
  private readonly structures: string[] = [];
  constructor(
    private readonly format: MhlHashFormat,
    private readonly digest: (data: Uint8Array) => string,
  ) {}

  private named(name: string, hash: string): string {
    const n = utf8.encode(name);
    const h = hashBytes(this.format, hash);
    const both = new Uint8Array(n.length + h.length);
    both.set(n);
    both.set(h, n.length);
    return this.digest(both);
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
  finish(): DirectoryHashPair {
    return { content: hashOfHashes(this.format, this.digest, this.contents), structure: hashOfHashes(this.format, this.digest, this.structures) };
  }
}
