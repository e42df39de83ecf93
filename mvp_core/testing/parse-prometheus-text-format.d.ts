/** Types for parse-prometheus-text-format (it ships none): prom2json's output shape. */
declare module "parse-prometheus-text-format" {
  /** One sample: a plain value, or a histogram's buckets, count and sum (all as text). */
  export interface PromSample {
    labels?: Record<string, string>;
    value?: string;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  /** One metric family. */
  export interface PromFamily {
    name: string;
    help: string;
    type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
    metrics: PromSample[];
  }
  /** Parses a Prometheus text-format exposition. */
  export default function parsePrometheusTextFormat(text: string): PromFamily[];
}
