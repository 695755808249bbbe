// SPDX-License-Identifier: Apache-2.0
/** The token the page was opened with, sent on every API call (the cookie carries it too). */
export const params = new URLSearchParams(location.search);
export const token = params.get('token') ?? '';
export const auth: Record<string, string> = token === '' ? {} : { authorization: `Bearer ${token}` };
