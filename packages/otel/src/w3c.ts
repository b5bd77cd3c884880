import { type SpanContext, TraceFlags, createTraceState, isSpanContextValid } from "@opentelemetry/api";
import type { JobHeaders } from "@proc/core";

// The W3C Trace Context header format (https://www.w3.org/TR/trace-context/), written and read
// here rather than through the global propagator: whatever propagator an app registers for its
// HTTP traffic (B3, Jaeger, none at all), a job's headers always hold W3C traceparent/tracestate.
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The headers that carry `context`: empty for an invalid context (no SDK, nothing to carry). */
export function contextHeaders(context: SpanContext): Record<string, string> {
  if (!isSpanContextValid(context)) return {};
  const flags = (context.traceFlags & 0xff).toString(16).padStart(2, "0");
  const headers: Record<string, string> = { traceparent: `00-${context.traceId}-${context.spanId}-${flags}` };
  const state = context.traceState?.serialize();
  if (state) headers.tracestate = state;
  return headers;
}

/** The remote span context a job's headers carry, or null when they carry none (or a bad one). */
export function headersContext(headers: JobHeaders | null): SpanContext | null {
  const match = headers?.traceparent ? TRACEPARENT.exec(headers.traceparent) : null;
  if (!match) return null;
  const context: SpanContext = {
    traceId: match[1]!,
    spanId: match[2]!,
    traceFlags: Number.parseInt(match[3]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
    ...(headers?.tracestate ? { traceState: createTraceState(headers.tracestate) } : {}),
  };
  return isSpanContextValid(context) ? context : null;
}
