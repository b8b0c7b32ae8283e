/**
 * The sidebar's sections drawn from the server's answers: pure functions from a payload
 * (the types of ./payloads) to DOM nodes. What a button does is passed in (IActions), so
 * drawing needs neither the server nor JupyterLab.
 */
import { formatBytes, formatTime, h, safeHref } from './dom';
import {
  IBackup,
  IClusters,
  IClusterStatus,
  IJobs,
  INodeRow,
  INodes,
  IPlotEntry,
  IPlots,
  IProgress,
  IServerlessApp,
  IServerlessAppError,
  ISessions,
  ISparkJob,
  ITransfer
} from './payloads';

/** What the sections' buttons and tiles do. */
export interface IActions {
  openPlot: (dir: string, plot: IPlotEntry) => void;
  deleteSession: (id: number, name: string | null) => void;
  sync: (action: 'backup' | 'restore') => void;
  copy: (text: string) => void;
}

/** Pending files listed by name; the rest are counted. */
export const PENDING_SHOWN = 8;
/** Conflicts listed; the rest are counted. */
export const CONFLICTS_SHOWN = 8;
/** Backup errors listed; the rest are counted. */
export const ERRORS_SHOWN = 5;

export function button(
  label: string,
  action: string,
  onClick: () => void,
  disabled = false
): HTMLButtonElement {
  const el = h(
    'button',
    { class: 'jp-HailButton jp-mod-styled', 'data-action': action },
    label
  );
  el.disabled = disabled;
  el.addEventListener('click', onClick);
  return el;
}

export function badge(state: string): HTMLElement {
  return h(
    'span',
    { class: `jp-HailBadge jp-HailBadge-${state.replace(/[^a-z_]/g, '')}` },
    state
  );
}

/** "and N more" after a list cut at `shown` of `total` items; null when nothing was cut. */
export function andMore(
  shown: number,
  total: number,
  what: string
): HTMLElement | null {
  const rest = total - shown;
  return rest > 0
    ? h(
        'div',
        { class: 'jp-HailMuted', 'data-field': `more-${what}` },
        `and ${rest} more ${what}`
      )
    : null;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export function renderCluster(
  s: IClusterStatus,
  clusters: IClusters | null,
  nodes: INodes | null,
  actions: IActions
): Node[] {
  const out: Node[] = [
    h(
      'div',
      { class: 'jp-HailRow' },
      h('span', { class: 'jp-HailLabel' }, 'Endpoint '),
      h('code', { class: 'jp-HailEndpoint' }, s.livy_url || 'not configured'),
      ' ',
      h(
        'span',
        {
          class: `jp-HailReach ${s.reachable ? 'jp-mod-ok' : 'jp-mod-bad'}`,
          'data-reachable': String(s.reachable)
        },
        s.reachable ? `reachable (${s.latency_ms} ms)` : 'not reachable'
      )
    )
  ];
  if (s.livy_url) {
    out.push(
      h(
        'div',
        { class: 'jp-HailMuted' },
        `from ${s.livy_url_source}; session name ${s.session_name ?? ''}`
      )
    );
  }
  if (s.serverless) {
    out.push(renderServerless(s.serverless));
  }
  if (s.error) {
    out.push(h('div', { class: 'jp-HailError' }, s.error));
  }
  out.push(
    h(
      'div',
      { class: 'jp-HailHint' },
      'Connect from a notebook: ',
      h('code', {}, s.hint)
    )
  );
  if (clusters) {
    out.push(...renderClusters(clusters));
  }
  if (nodes) {
    out.push(...renderNodes(nodes, actions));
  }
  return out;
}

/** The EMR Serverless application that is the target: id, name, state, release, endpoint. */
export function renderServerless(
  app: IServerlessApp | IServerlessAppError
): HTMLElement {
  if ('error' in app) {
    return h(
      'div',
      { class: 'jp-HailError', 'data-field': 'serverless' },
      `EMR Serverless application ${app.application_id}: ${app.error}`
    );
  }
  return h(
    'div',
    {
      class: 'jp-HailServerless',
      'data-field': 'serverless',
      'data-application-id': app.application_id
    },
    h('span', { class: 'jp-HailLabel' }, 'EMR Serverless application '),
    h('code', {}, app.application_id),
    ` ${app.name} `,
    badge(app.state.toLowerCase()),
    ` ${app.release}`,
    h(
      'div',
      { class: 'jp-HailMuted' },
      'Livy endpoint ',
      h('code', { 'data-field': 'serverless-livy' }, app.livy_url),
      ` (${app.region})`
    )
  );
}

function renderClusters(clusters: IClusters): Node[] {
  if (clusters.error) {
    return [
      h('div', { class: 'jp-HailMuted' }, `EMR clusters: ${clusters.error}`)
    ];
  }
  const rows = clusters.clusters.map(c =>
    h(
      'li',
      { 'data-cluster-id': c.cluster_id },
      `${c.name} ${c.cluster_id} `,
      h('span', { class: 'jp-HailMuted' }, c.state),
      c.livy_url ? h('code', {}, ` ${c.livy_url}`) : null
    )
  );
  return [
    h('div', { class: 'jp-HailLabel' }, `EMR clusters (${rows.length})`),
    h('ul', { class: 'jp-HailList' }, ...rows)
  ];
}

/** What SSM says of a node, as the row shows it. */
function ssmText(node: INodeRow): string {
  if (node.shell) {
    return `SSM ${node.ping_status ?? ''}`.trim();
  }
  return node.managed
    ? `SSM agent ${node.ping_status}: no shell`
    : 'not managed by SSM: no shell';
}

/**
 * The configured cluster's nodes, with a copyable `hail-emr-lab ssm` command where the server
 * says it opens a shell (`shell`); elsewhere the server's reason, as a tooltip.
 */
export function renderNodes(n: INodes, actions: IActions): Node[] {
  if (!n.available) {
    return [];
  }
  const rows = n.nodes.map(node =>
    h(
      'li',
      {
        class: 'jp-HailNode',
        'data-instance': node.instance_id,
        'data-shell': String(node.shell)
      },
      `${node.instance_id} ${node.group} `,
      h(
        'span',
        { class: 'jp-HailMuted', title: node.no_shell_reason ?? '' },
        `${node.state} · ${ssmText(node)}`
      ),
      node.shell
        ? h(
            'div',
            {},
            h('code', { class: 'jp-HailNodeCommand' }, node.terminal_command),
            ' ',
            button('Copy', 'copy-ssm', () =>
              actions.copy(node.terminal_command)
            )
          )
        : null
    )
  );
  const out: Node[] = [
    h(
      'div',
      { class: 'jp-HailLabel' },
      `Nodes of ${n.cluster_id} (${rows.length}): shell in a terminal`
    ),
    h('ul', { class: 'jp-HailList' }, ...rows)
  ];
  if (!n.nodes.every(node => node.shell)) {
    out.push(
      h(
        'div',
        { class: 'jp-HailMuted', 'data-field': 'no-shell' },
        'No shell: the SSM agent is not running or not answering, the instance profile lacks ' +
          'AmazonSSMManagedInstanceCore, or the VPC has no SSM endpoints (hail-emr-lab ssm --node ID says more).'
      )
    );
  }
  return out;
}

export function renderSessions(data: ISessions, actions: IActions): Node[] {
  if (data.error) {
    return [h('div', { class: 'jp-HailError' }, data.error)];
  }
  if (!data.sessions.length) {
    return [
      h(
        'div',
        { class: 'jp-HailMuted' },
        'No sessions on this endpoint. Run %hail connect in a notebook.'
      )
    ];
  }
  return [
    h(
      'ul',
      { class: 'jp-HailList' },
      ...data.sessions.map(s => {
        const ui = safeHref(s.spark_ui_url);
        return h(
          'li',
          {
            class: 'jp-HailSession',
            'data-session-id': String(s.id),
            'data-own': String(s.own)
          },
          h(
            'span',
            { class: 'jp-HailSession-name' },
            `#${s.id} ${s.name ?? '(unnamed)'}`
          ),
          ' ',
          badge(s.state),
          s.own ? h('span', { class: 'jp-HailOwn' }, ' yours') : null,
          s.notebook
            ? h(
                'div',
                { class: 'jp-HailMuted jp-HailSession-notebook' },
                `notebook: ${s.notebook}`
              )
            : null,
          ui
            ? h(
                'a',
                {
                  href: ui,
                  target: '_blank',
                  rel: 'noopener noreferrer',
                  class: 'jp-HailLink'
                },
                'Spark UI'
              )
            : null,
          s.spark_ui_note
            ? h(
                'div',
                { class: 'jp-HailMuted', 'data-field': 'spark-ui-note' },
                s.spark_ui_note
              )
            : null,
          s.own && s.alive
            ? button('Delete', 'delete-session', () =>
                actions.deleteSession(s.id, s.name)
              )
            : null
        );
      })
    )
  ];
}

function renderSparkJob(job: ISparkJob): HTMLElement {
  return h(
    'li',
    { class: 'jp-HailJob' },
    `Job ${job.jobId} ${job.status ?? ''}: ${job.numCompletedTasks ?? 0}/${job.numTasks ?? 0} tasks` +
      (job.numActiveTasks ? `, ${job.numActiveTasks} running` : '') +
      (job.numFailedTasks ? `, ${job.numFailedTasks} failed` : ''),
    h(
      'ul',
      {},
      ...job.stages.map(stage =>
        h(
          'li',
          { class: 'jp-HailStage' },
          `Stage ${stage.stageId} ${stage.status ?? ''}: ${stage.numCompleteTasks ?? 0}/${stage.numTasks ?? 0}` +
            ` ${(stage.name ?? '').slice(0, 60)}`
        )
      )
    )
  );
}

/** `512 B`, `12.3 kB`, `120.3 MB`, `1.20 GB`: decimal units, as the cell's progress line. */
export function transferBytes(size: number): string {
  if (size < 1000) {
    return `${Math.floor(size)} B`;
  }
  const units: [string, number][] = [
    ['kB', 1e3],
    ['MB', 1e6],
    ['GB', 1e9],
    ['TB', 1e12]
  ];
  for (const [unit, scale] of units) {
    if (size < scale * 1000 || unit === 'TB') {
      const value = size / scale;
      const digits = (unit === 'GB' || unit === 'TB') && value < 10 ? 2 : 1;
      return `${value.toFixed(digits)} ${unit}`;
    }
  }
  return `${size} B`;
}

/** `7 s`, `2 min 05 s`, `1 h 02 min`, as the cell's progress line. */
export function formatSeconds(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) {
    return `${s} s`;
  }
  const two = (n: number): string => String(n).padStart(2, '0');
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${two(s % 60)} s`;
  }
  return `${Math.floor(s / 3600)} h ${two(Math.floor((s % 3600) / 60))} min`;
}

const TRANSPORTS: Record<string, string> = {
  livy: 'through Livy',
  staged: 'staged as Parquet'
};

/** One transfer a kernel publishes: what moves, bytes of total, rows, rate, time left. */
export function renderTransfer(t: ITransfer): HTMLElement {
  const verb = t.direction === 'push' ? 'Pushing' : 'Pulling';
  const how = t.transport ? (TRANSPORTS[t.transport] ?? t.transport) : '';
  const parts = [
    transferBytes(t.done_bytes) +
      (t.total_bytes !== null ? ` of ${transferBytes(t.total_bytes)}` : '')
  ];
  if (t.rows !== null) {
    parts.push(`${t.rows.toLocaleString('en-US')} rows`);
  }
  parts.push(
    t.rate !== null
      ? t.rate >= 1e5
        ? `${(t.rate / 1e6).toFixed(1)} MB/s`
        : `${transferBytes(t.rate)}/s`
      : '… MB/s'
  );
  if (t.eta !== null && t.eta > 0) {
    parts.push(`${formatSeconds(Math.ceil(t.eta))} left`); // never "0 s left" while moving
  }
  let bar: HTMLElement | null = null;
  if (t.total_bytes) {
    const pct = Math.min(100, Math.round((100 * t.done_bytes) / t.total_bytes));
    const fill = h('div', { class: 'jp-HailProgress-fill' });
    fill.style.width = `${pct}%`;
    bar = h(
      'div',
      {
        class: 'jp-HailProgress',
        role: 'progressbar',
        'aria-valuenow': String(pct)
      },
      fill,
      h('span', { class: 'jp-HailProgress-text' }, `${pct}%`)
    );
  }
  const notebook = t.notebook ? (t.notebook.split('/').pop() ?? '') : '';
  return h(
    'div',
    {
      class: 'jp-HailTransfer',
      'data-transfer': t.name,
      'data-direction': t.direction,
      'data-kernel-pid': String(t.kernel_pid)
    },
    h(
      'div',
      { class: 'jp-HailRow' },
      `${verb} ${t.name}${how ? ' ' + how : ''}`,
      notebook ? h('span', { class: 'jp-HailMuted' }, ` · ${notebook}`) : null
    ),
    bar,
    h('div', { class: 'jp-HailTransfer-detail' }, parts.join(' · '))
  );
}

export function renderRunning(data: IProgress): Node[] {
  // Transfers first: they are read from this machine and show even when Livy does not answer.
  const out: Node[] = data.transfers.map(renderTransfer);
  if (data.transfers_error) {
    out.push(h('div', { class: 'jp-HailError' }, data.transfers_error));
  }
  if (data.error) {
    out.push(h('div', { class: 'jp-HailError' }, data.error));
    return out;
  }
  for (const session of data.sessions) {
    if (session.error) {
      out.push(
        h(
          'div',
          { class: 'jp-HailError' },
          `#${session.session_id}: ${session.error}`
        )
      );
    }
    for (const st of session.statements) {
      const pct = Math.round(st.progress * 100);
      const bar = h('div', { class: 'jp-HailProgress-fill' });
      bar.style.width = `${pct}%`;
      const jobs = st.jobs.map(renderSparkJob);
      out.push(
        h(
          'div',
          {
            class: 'jp-HailStatement',
            'data-statement-id': String(st.id),
            'data-session-id': String(session.session_id)
          },
          h(
            'div',
            { class: 'jp-HailRow' },
            `Session #${session.session_id}, statement ${st.id} `,
            badge(st.state)
          ),
          h('code', { class: 'jp-HailCode' }, st.code),
          h(
            'div',
            {
              class: 'jp-HailProgress',
              role: 'progressbar',
              'aria-valuenow': String(pct)
            },
            bar,
            h('span', { class: 'jp-HailProgress-text' }, `${pct}%`)
          ),
          session.spark_error
            ? h('div', { class: 'jp-HailMuted' }, session.spark_error)
            : null,
          jobs.length ? h('ul', { class: 'jp-HailList' }, ...jobs) : null
        )
      );
    }
  }
  return out.length
    ? out
    : [h('div', { class: 'jp-HailMuted' }, 'Nothing running.')];
}

export function renderPlots(data: IPlots, actions: IActions): Node[] {
  const out: Node[] = [
    h('div', { class: 'jp-HailMuted' }, `${data.plots_dir}/`)
  ];
  if (data.message) {
    out.push(h('div', { class: 'jp-HailMuted' }, data.message));
  }
  const tiles = data.plots.map(plot => {
    const tile = h(
      'button',
      {
        class: 'jp-HailPlot',
        'data-plot': plot.file,
        title: plot.remote_path ?? plot.file
      },
      h(
        'span',
        { class: `jp-HailPlot-kind jp-HailPlot-${plot.kind}` },
        plot.kind.toUpperCase()
      ),
      h('span', { class: 'jp-HailPlot-name' }, plot.name),
      h(
        'span',
        { class: 'jp-HailMuted' },
        `${formatBytes(plot.size)} · ${formatTime(plot.time)}`
      )
    );
    tile.addEventListener('click', () => actions.openPlot(data.dir, plot));
    return tile;
  });
  if (tiles.length) {
    out.push(h('div', { class: 'jp-HailGallery' }, ...tiles));
  }
  return out;
}

function renderSyncStatus(
  s: NonNullable<IBackup['status']>,
  skippedNote: string | null
): Node[] {
  const out: (Node | null)[] = [
    h(
      'div',
      { class: 'jp-HailRow', 'data-field': 'last-backup' },
      `Last backup: ${formatTime(s.last_backup)}`
    ),
    h(
      'div',
      { class: 'jp-HailRow', 'data-field': 'pending' },
      `Pending files: ${s.pending_count}`
    )
  ];
  const pending = s.pending.slice(0, PENDING_SHOWN);
  if (pending.length) {
    out.push(
      h(
        'ul',
        { class: 'jp-HailList jp-HailMuted', 'data-field': 'pending-files' },
        ...pending.map(p => h('li', {}, p))
      ),
      andMore(pending.length, s.pending_count, 'files')
    );
  }
  if (skippedNote) {
    out.push(
      h(
        'div',
        { class: 'jp-HailRow jp-HailMuted', 'data-field': 'skipped' },
        skippedNote
      )
    );
  }
  out.push(
    h(
      'div',
      {
        class: `jp-HailRow ${s.conflicts.length ? 'jp-HailWarn' : ''}`,
        'data-field': 'conflicts'
      },
      `Conflicts: ${s.conflicts.length}`
    )
  );
  const conflicts = s.conflicts.slice(0, CONFLICTS_SHOWN);
  for (const c of conflicts) {
    out.push(h('div', { class: 'jp-HailWarn' }, text(c)));
  }
  out.push(andMore(conflicts.length, s.conflicts.length, 'conflicts'));
  const errors = s.errors.slice(0, ERRORS_SHOWN);
  for (const e of errors) {
    out.push(h('div', { class: 'jp-HailError' }, text(e)));
  }
  out.push(andMore(errors.length, s.errors.length, 'errors'));
  return out.filter((n): n is Node => n !== null);
}

/** `busy`: a backup or restore was just asked for here (its buttons stay disabled). */
export function renderBackup(
  data: IBackup,
  busy: boolean,
  actions: IActions
): Node[] {
  const out: Node[] = [];
  if (data.error) {
    out.push(h('div', { class: 'jp-HailError' }, data.error));
  }
  const s = data.status;
  if (data.target) {
    out.push(
      h(
        'div',
        { class: 'jp-HailMuted' },
        `s3://${data.target.bucket}/${data.target.prefix}/`
      )
    );
  }
  if (s) {
    out.push(...renderSyncStatus(s, data.skipped_note));
  }
  const run = data.run;
  const running = run.running || busy || (s?.running ?? false);
  if (run.action) {
    out.push(
      h(
        'div',
        {
          class: `jp-HailRow ${run.ok === false ? 'jp-HailError' : 'jp-HailMuted'}`,
          'data-field': 'run'
        },
        run.running ? `${run.action} running…` : (run.message ?? '')
      )
    );
  }
  if (data.configured) {
    out.push(
      h(
        'div',
        { class: 'jp-HailButtons' },
        button('Back up now', 'backup', () => actions.sync('backup'), running),
        button('Restore', 'restore', () => actions.sync('restore'), running)
      )
    );
  }
  return out;
}

export function renderJobs(data: IJobs): Node[] {
  if (!data.available || data.error) {
    return [
      h(
        'div',
        { class: 'jp-HailMuted' },
        data.error ?? 'jobs are not available'
      )
    ];
  }
  if (!data.jobs.length) {
    return [
      h(
        'div',
        { class: 'jp-HailMuted' },
        'No jobs submitted from here yet (hail-emr-lab jobs submit).'
      )
    ];
  }
  return [
    h(
      'ul',
      { class: 'jp-HailList' },
      ...data.jobs.map(job =>
        h(
          'li',
          { class: 'jp-HailJobRow', 'data-job-id': job.id },
          `${job.name} `,
          h('span', { class: 'jp-HailMuted' }, `${job.backend} ${job.id} `),
          badge(job.state.toLowerCase()),
          h('span', { class: 'jp-HailMuted' }, ` ${formatTime(job.submitted)}`)
        )
      )
    )
  ];
}
