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
  ISparkJob
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

export function renderRunning(data: IProgress): Node[] {
  if (data.error) {
    return [h('div', { class: 'jp-HailError' }, data.error)];
  }
  const out: Node[] = [];
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
