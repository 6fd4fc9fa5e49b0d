// The session and the one way the console talks to the server. The token lives in this
// module's memory only: never in localStorage or sessionStorage, never in a URL, never in a
// cookie. Reloading the page forgets it.

let session = null;

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** Signs in: asks the server what the token is (GET /v1/whoami) and keeps it if valid. */
export async function signIn(token, tenant) {
  const candidate = { token, tenant: tenant || null, scopes: [], tenantName: null, tokenId: null };
  const who = await request('/v1/whoami', {}, candidate);
  candidate.scopes = who.scopes;
  candidate.tenantName = who.tenant;
  candidate.tokenId = who.token_id;
  session = candidate;
  return who;
}

export function signOut() {
  session = null;
}

export function signedIn() {
  return session !== null;
}

export function whoami() {
  return session ? { tenant: session.tenantName, tokenId: session.tokenId, scopes: [...session.scopes] } : null;
}

/** Whether the token has `scope`. */
export function can(scope) {
  return session !== null && session.scopes.includes(scope);
}

/**
 * GET `path` (with `params`, an object of query parameters; empty ones left out). Resolves
 * to parsed JSON, or to text when `as` is 'text'; rejects with an ApiError carrying the
 * server's message.
 */
export async function request(path, { params, as = 'json', accept } = {}, who = session) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: accept ?? (as === 'json' ? 'application/json' : 'text/plain') };
  if (who) {
    headers.Authorization = `Bearer ${who.token}`;
    if (who.tenant) headers['X-Tenant-ID'] = who.tenant;
  }
  let response;
  try {
    response = await fetch(url, { headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
  } catch (error) {
    throw new ApiError(0, `the server cannot be reached (${error.message})`);
  }
  if (!response.ok) {
    let body = null;
    let message = `${response.status} ${response.statusText}`;
    try {
      body = await response.json();
      if (body?.message) message = `${response.status}: ${body.message}`;
    } catch {
      // Not a JSON error: keep the status line.
    }
    throw new ApiError(response.status, message, body);
  }
  if (as === 'text') return response.text();
  if (as === 'blob') return response.blob();
  return response.json();
}
