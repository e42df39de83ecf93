/**
 * The ASC MHL data model (one type per XSD concept the library reads or writes) and the schema of
 * what a caller hands the writer. Dates are kept as the xs:dateTime text they are written as.
 */
import { z } from "zod";
import { MHL_HASH_FORMATS, type MhlHashFormat } from "./hash_format.ts";
import { relativePathProblem } from "./relative_path.ts";

/** original: first hash of a file in its history; verified: matched an earlier record; failed: did not. */
export type HashAction = "original" | "verified" | "failed";

/** The process that made a manifest (ProcessType). */
export type ProcessType = "in-place" | "transfer" | "flatten";

/** One digest of a file or folder (HashFormatType); action is absent for directory hashes. */
export interface HashValue {
  format: MhlHashFormat;
  value: string;
  action?: HashAction;
  hashDate?: string;
}

/** A file's hash record (HashType). */
export interface FileHashRecord {
  kind: "file";
  path: string;
  size?: number;
  creationDate?: string;
  lastModificationDate?: string;
  hashes: HashValue[];
  previousPath?: string;
}

/** A folder's content and structure hashes (DirectoryHashType); entries pair up by format. */
export interface DirectoryHashRecord {
  kind: "directory";
  path: string;
  creationDate?: string;
  lastModificationDate?: string;
  content: HashValue[];
  structure: HashValue[];
  previousPath?: string;
}

/** The hashes of the whole managed data set (RootDirectoryHashType). */
export interface RootHash {
  content: HashValue[];
  structure: HashValue[];
}

/** An author of the process (AuthorType). */
export interface Author {
  name: string;
  email?: string;
  phone?: string;
  role?: string;
}

/** Who made a manifest, where and with what (CreatorInfoType). */
export interface CreatorInfo {
  creationDate: string;
  hostName: string;
  tool: { name: string; version?: string };
  authors: Author[];
  location?: string;
  comment?: string;
}

/** A reference from a manifest to a nested history's manifest (HashListReferenceType). */
export interface HashListReference {
  path: string;
  c4: string;
}

/** One ASC MHL manifest (HashListType), as read or as about to be written. */
export interface Manifest {
  creator: CreatorInfo;
  process: ProcessType;
  rootHash?: RootHash;
  ignore: string[];
  hashes: (FileHashRecord | DirectoryHashRecord)[];
  references: HashListReference[];
}

/** One line of a chain file: a generation's manifest, by name, with its C4 id. */
export interface ChainEntry {
  sequence: number;
  path: string;
  c4: string;
}

const date = z.date({ error: "a valid Date" }).refine((d) => !Number.isNaN(d.getTime()), "a valid Date (this one is Invalid Date)");

const relPath = z.string().superRefine((p, ctx) => {
  const problem = relativePathProblem(p);
  if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
});

// The XSD's EmailAddressAttributeType pattern, so a manifest never fails validation on an author's address.
const email = z.string().regex(/^[^@]+@[^.]+\..+$/, "an e-mail address such as name@example.com");

/** What the caller says about the process and its people (creator info without the date). */
export const CreatorInputSchema = z.object({
  // The reference reader (ascmhl) fails on a <tool> without a version attribute: always write one.
  tool: z.object({ name: z.string().min(1), version: z.string().min(1) }),
  hostName: z.string().min(1),
  authors: z.array(z.object({ name: z.string().min(1), email: email.optional(), phone: z.string().optional(), role: z.string().optional() })).default([]),
  location: z.string().optional(),
  comment: z.string().optional(),
});

/** A file of the new generation: its path in the scope, size, mtime, and the hashes computed now. */
export const FileInputSchema = z.object({
  path: relPath,
  size: z.number().int().nonnegative(),
  lastModified: date.optional(),
  hashes: z.partialRecord(z.enum(MHL_HASH_FORMATS), z.string()),
});

/** Everything the writer needs for the next generation of a folder's history (see generation.ts). */
export const GenerationInputSchema = z.object({
  /** The scope folder's name (the manifest file names carry it). */
  rootName: z.string().min(1).refine((s) => !s.includes("/") && s !== "." && s !== "..", "a folder name, not a path"),
  createdAt: date,
  creator: CreatorInputSchema,
  process: z.enum(["in-place", "transfer"]).default("transfer"),
  /** The format every file carries and directory hashes are computed in. */
  hashFormat: z.enum(MHL_HASH_FORMATS),
  files: z.array(FileInputSchema),
  /** Folders of the scope (mtimes, empty folders); folders holding listed files are implied. */
  directories: z.array(z.object({ path: relPath, lastModified: date.optional() })).default([]),
  /** Directory and root hashes need every file of the scope: false when `files` is a subset. */
  directoryHashes: z.boolean().default(true),
  /** Ignore patterns to add (gitignore syntax) to each history's. */
  ignore: z.array(z.string().min(1)).default([]),
});

/** The writer's input before defaults are applied. */
export type GenerationInput = z.input<typeof GenerationInputSchema>;
/** The writer's input after validation. */
export type GenerationSpec = z.output<typeof GenerationInputSchema>;
