import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Where the server extension answers (see hail_emr_lab/server/handlers.py). */
export const API_PATH = 'hail-emr-lab/api';

/** An error answer of the server extension, with its one-paragraph message. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

/**
 * Call the server extension. `ServerConnection.makeRequest` adds the token and the XSRF
 * header, so POST and DELETE pass jupyter_server's checks.
 */
export async function requestAPI<T>(
  path: string,
  init: RequestInit = {},
  params: Record<string, string> = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const query = new URLSearchParams(params).toString();
  const url =
    URLExt.join(settings.baseUrl, API_PATH, path) + (query ? `?${query}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiError(
        `unexpected answer from ${path}: not JSON`,
        response.status
      );
    }
  }
  if (!response.ok) {
    const message = (data && data.message) || response.statusText;
    throw new ApiError(String(message), response.status);
  }
  return data as T;
}

/** URL of the sandboxed viewer of one plot (served with a strict CSP). */
export function plotViewerUrl(
  dir: string,
  file: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const query = new URLSearchParams({ dir, name: file }).toString();
  return URLExt.join(settings.baseUrl, API_PATH, 'plots/view') + '?' + query;
}
