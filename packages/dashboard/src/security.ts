// The guards of a mutating request, in the order the dashboard applies them: actions enabled,
// same-origin (Fetch Metadata and Origin), the signed double-submit CSRF token, then the
// token and/or the host app's authorize hook.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { DashboardAction, ResolvedOptions } from "./options.js";

/**
 * No inline script or style, nothing from another origin, no framing, forms post only here:
 * even markup that escaped escaping could run nothing.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  // Not no-referrer: under it browsers send "Origin: null" with the forms, which the
  // same-origin check must refuse.
  "referrer-policy": "same-origin",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

export const CSRF_COOKIE = "proc_dashboard_csrf";
export const CSRF_FIELD = "csrf";
const NONCE = /^[A-Za-z0-9_-]{43}$/;

/** A new random value for the CSRF cookie (32 bytes, base64url). */
export const newNonce = (): string => randomBytes(32).toString("base64url");

export function nonceFromCookie(header: string | undefined): string | null {
  for (const part of (header ?? "").split(";")) {
    const [name, value] = part.trim().split("=", 2);
    if (name === CSRF_COOKIE && value && NONCE.test(value)) return value;
  }
  return null;
}

/** The form token of a cookie's nonce: HMAC-SHA256 under the dashboard's secret. */
export const csrfToken = (secret: Buffer, nonce: string): string =>
  createHmac("sha256", secret).update(nonce).digest("base64url");

export function csrfCookie(nonce: string, basePath: string, secure: boolean): string {
  return `${CSRF_COOKIE}=${nonce}; Path=${basePath || "/"}; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}

/** Constant-time equality of two strings of any lengths. */
export function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * Why a request did not come from the dashboard's own pages, or null when it did. Browsers
 * send Sec-Fetch-Site on every request and Origin on every POST; a forged cross-site form or
 * fetch carries another site in them, which no page can change. The host is compared, not the
 * scheme, so a proxy terminating TLS in front of the dashboard does not break it.
 */
export function crossSiteReason(request: Request): string | null {
  const site = request.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin") return `a ${site} request (Sec-Fetch-Site)`;
  const origin = request.headers.get("origin");
  if (origin === null) return null;
  const host = request.headers.get("host") ?? new URL(request.url).host;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return `an unreadable Origin (${origin})`;
  }
  return originHost === host ? null : `a request from another origin (${origin})`;
}

/**
 * Why the CSRF token is missing or wrong, or null when it is right: the form field (or the
 * X-Proc-CSRF header) must be the HMAC of the HttpOnly cookie's nonce. A cross-site page can
 * neither read the cookie nor compute the HMAC without the secret.
 */
export function csrfReason(
  options: ResolvedOptions,
  request: Request,
  submitted: string | null,
): string | null {
  const nonce = nonceFromCookie(request.headers.get("cookie") ?? undefined);
  if (nonce === null) return "no CSRF cookie: reload the dashboard page and try again";
  if (!submitted) return "no CSRF token in the request: submit the dashboard's own form";
  if (!sameSecret(submitted, csrfToken(options.secret, nonce)))
    return "a wrong CSRF token: reload the dashboard page and try again";
  return null;
}

/** Why the request may not act, or null when every configured guard agrees. */
export async function authorizationReason(
  options: ResolvedOptions,
  request: Request,
  action: DashboardAction,
  formToken: string | null,
): Promise<string | null> {
  if (options.token !== null) {
    const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.get("authorization") ?? "")?.[1];
    const given = formToken || request.headers.get("x-proc-dashboard-token") || bearer || null;
    if (given === null) return "this action needs the dashboard token";
    if (!sameSecret(given, options.token)) return "a wrong dashboard token";
  }
  if (options.authorize !== null && (await options.authorize(request, action)) !== true)
    return `not authorized to ${action} jobs`;
  return null;
}
