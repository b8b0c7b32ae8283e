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

export interface IClusterStatus {
  livy_url: string | null;
  livy_url_source: string;
  session_name: string | null;
  reachable: boolean;
  error: string | null;
  latency_ms: number | null;
  hint: string;
  cluster_id: string | null;
}

export interface ISessionInfo {
  id: number;
  name: string | null;
  state: string;
  alive: boolean;
  busy: boolean;
  starting: boolean;
  app_id: string | null;
  spark_ui_url: string | null;
  own: boolean;
  /** The notebook that owns the session (its path when open here, else its name's stem). */
  notebook: string | null;
}

export interface ISessions {
  session_name: string | null;
  sessions: ISessionInfo[];
  error: string | null;
}

export interface IStage {
  stageId: number;
  name?: string;
  status?: string;
  numTasks?: number;
  numActiveTasks?: number;
  numCompleteTasks?: number;
  numFailedTasks?: number;
}

export interface IJob {
  jobId: number;
  name?: string;
  status?: string;
  jobGroup?: string;
  numTasks?: number;
  numActiveTasks?: number;
  numCompletedTasks?: number;
  numFailedTasks?: number;
  stages: IStage[];
}

export interface IStatementProgress {
  id: number;
  state: string;
  progress: number;
  code: string;
  jobs: IJob[];
}

export interface ISessionProgress {
  session_id: number;
  name: string | null;
  state: string;
  own: boolean;
  statements: IStatementProgress[];
  error: string | null;
  spark_error: string | null;
}

export interface IProgress {
  sessions: ISessionProgress[];
  error: string | null;
}

export interface IPlot {
  name: string;
  file: string;
  kind: string;
  remote_path: string | null;
  time: string | number | null;
  size: number | null;
  sha256: string | null;
  indexed: boolean;
}

export interface IPlots {
  dir: string;
  plots_dir: string;
  plots: IPlot[];
  message: string | null;
}

export interface IBackupRun {
  action: string | null;
  running: boolean;
  ok: boolean | null;
  message: string | null;
  finished: number | null;
}

export interface IBackup {
  available: boolean;
  configured: boolean;
  error: string | null;
  target?: { bucket: string; prefix: string; home: string };
  status: {
    last_backup: string | null;
    last_restore: string | null;
    pending: string[];
    pending_count: number;
    conflicts: any[];
    errors: any[];
    running: boolean;
  } | null;
  skipped_note?: string | null;
  run: IBackupRun;
}

export interface IClusters {
  available: boolean;
  error: string | null;
  clusters: Record<string, any>[];
}

/** The configured cluster's nodes and whether Systems Manager manages them (GET nodes). */
export interface INodes {
  available: boolean;
  error: string | null;
  cluster_id: string | null;
  nodes: {
    instance_id: string;
    group: string;
    state: string;
    managed: boolean | null;
    /** The SSM agent's PingStatus: Online, ConnectionLost, Inactive (null: not registered). */
    ping_status: string | null;
    terminal_command: string;
  }[];
}

export interface IJobs {
  available: boolean;
  error: string | null;
  jobs: Record<string, any>[];
}
