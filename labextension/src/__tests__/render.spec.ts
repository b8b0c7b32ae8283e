/**
 * Each sidebar section drawn from an answer recorded from the real server extension
 * (fixtures/*.json, written by tests/integration/test_payload_recordings.py, which also checks
 * that they are still what the server sends). Assertions are on the DOM produced.
 */
import {
  IBackup,
  IClusters,
  IClusterStatus,
  IJobs,
  INodes,
  IPlots,
  IProgress,
  IServerlessApp,
  ISessions
} from '../payloads';
import {
  IActions,
  PENDING_SHOWN,
  renderBackup,
  renderCluster,
  renderJobs,
  renderPlots,
  renderRunning,
  renderSessions
} from '../render';
import clustersJson from './fixtures/clusters.json';
import jobsJson from './fixtures/jobs.json';
import nodesJson from './fixtures/nodes.json';
import plotsJson from './fixtures/plots.json';
import progressJson from './fixtures/progress.json';
import sessionsJson from './fixtures/sessions.json';
import serverlessSessionsJson from './fixtures/sessions-serverless.json';
import statusJson from './fixtures/status.json';
import serverlessJson from './fixtures/status-serverless.json';
import serverlessMissingJson from './fixtures/status-serverless-missing.json';
import syncJson from './fixtures/sync.json';

/** A fresh deep copy of a recording, as the payload type it was recorded for. */
function fixture<T>(data: unknown): T {
  return JSON.parse(JSON.stringify(data)) as T;
}

/** The nodes in a section body, as the panel puts them. */
function draw(nodes: Node[]): HTMLElement {
  const body = document.createElement('div');
  body.replaceChildren(...nodes);
  return body;
}

function all(root: HTMLElement, selector: string): HTMLElement[] {
  return Array.from(root.querySelectorAll<HTMLElement>(selector));
}

function one(root: HTMLElement, selector: string): HTMLElement {
  const found = root.querySelector<HTMLElement>(selector);
  if (!found) {
    throw new Error(`${selector} not drawn in: ${root.innerHTML}`);
  }
  return found;
}

function recordingActions(): IActions & { calls: unknown[][] } {
  const calls: unknown[][] = [];
  return {
    calls,
    openPlot: (dir, plot) => calls.push(['openPlot', dir, plot.file]),
    deleteSession: (id, name) => calls.push(['deleteSession', id, name]),
    sync: action => calls.push(['sync', action]),
    copy: text => calls.push(['copy', text])
  };
}

describe('Cluster section', () => {
  it('shows the endpoint, that it answers, where it was configured and how to connect', () => {
    const status = fixture<IClusterStatus>(statusJson);
    const body = draw(renderCluster(status, null, null, recordingActions()));
    expect(one(body, '.jp-HailEndpoint').textContent).toBe(status.livy_url);
    const reach = one(body, '.jp-HailReach');
    expect(reach.dataset.reachable).toBe('true');
    expect(reach.textContent).toBe(`reachable (${status.latency_ms} ms)`);
    expect(body.textContent).toContain(
      `from environment; session name ${status.session_name}`
    );
    expect(one(body, '.jp-HailHint code').textContent).toBe(status.hint);
    expect(body.querySelector('[data-field="serverless"]')).toBeNull();
    expect(body.querySelector('.jp-HailError')).toBeNull();
  });

  it('shows the EMR Serverless application that is the target', () => {
    const status = fixture<IClusterStatus>(serverlessJson);
    const app = status.serverless as IServerlessApp;
    const body = draw(renderCluster(status, null, null, recordingActions()));
    const row = one(body, '[data-field="serverless"]');
    expect(row.dataset.applicationId).toBe(app.application_id);
    expect(row.textContent).toContain(
      `EMR Serverless application ${app.application_id} hail-interactive`
    );
    expect(one(row, '.jp-HailBadge').textContent).toBe('started');
    expect(row.textContent).toContain('emr-7.2.0');
    expect(one(row, '[data-field="serverless-livy"]').textContent).toBe(
      `https://${app.application_id}.livy.emr-serverless-services.us-east-1.amazonaws.com`
    );
    expect(row.textContent).toContain('(us-east-1)');
  });

  it('says why a configured serverless application could not be described', () => {
    const status = fixture<IClusterStatus>(serverlessMissingJson);
    const body = draw(renderCluster(status, null, null, recordingActions()));
    const row = one(body, '[data-field="serverless"]');
    expect(row.classList.contains('jp-HailError')).toBe(true);
    expect(row.textContent).toContain(
      "no EMR Serverless application '00fnothere0000'"
    );
  });

  it('lists the active EMR clusters', () => {
    const clusters = fixture<IClusters>(clustersJson);
    const c = clusters.clusters[0];
    const body = draw(
      renderCluster(
        fixture<IClusterStatus>(statusJson),
        clusters,
        null,
        recordingActions()
      )
    );
    expect(body.textContent).toContain('EMR clusters (1)');
    const row = one(body, `[data-cluster-id="${c.cluster_id}"]`);
    expect(row.textContent).toContain(`hail-lab-cluster ${c.cluster_id}`);
    expect(row.textContent).toContain(c.state);
  });
});

describe('Cluster section: nodes', () => {
  const drawNodes = (nodes: INodes, actions = recordingActions()) =>
    draw(
      renderCluster(fixture<IClusterStatus>(statusJson), null, nodes, actions)
    );

  it('offers the shell command only where the server says it opens a shell', () => {
    const nodes = fixture<INodes>(nodesJson);
    const actions = recordingActions();
    const body = drawNodes(nodes, actions);
    const rows = all(body, '.jp-HailNode');
    expect(rows.map(r => [r.dataset.instance, r.dataset.shell])).toEqual(
      nodes.nodes.map(n => [n.instance_id, String(n.shell)])
    );
    expect(rows.map(r => r.dataset.shell)).toEqual(['true', 'false', 'false']);
    expect(rows[0].textContent).toContain('MASTER');
    expect(rows[0].textContent).toContain('RUNNING · SSM Online');
    expect(one(rows[0], '.jp-HailNodeCommand').textContent).toBe(
      nodes.nodes[0].terminal_command
    );
    one(rows[0], 'button[data-action="copy-ssm"]').click();
    expect(actions.calls).toEqual([['copy', nodes.nodes[0].terminal_command]]);
    expect(rows[1].textContent).toContain(
      'RUNNING · SSM agent ConnectionLost: no shell'
    );
    expect(rows[2].textContent).toContain(
      'RUNNING · not managed by SSM: no shell'
    );
    for (const [i, row] of rows.slice(1).entries()) {
      expect(row.querySelector('.jp-HailNodeCommand')).toBeNull();
      expect(one(row, '.jp-HailMuted').title).toBe(
        nodes.nodes[i + 1].no_shell_reason
      );
    }
    expect(one(body, '[data-field="no-shell"]').textContent).toContain(
      'AmazonSSMManagedInstanceCore'
    );
  });

  it('reads the shell flag and never decides it from the SSM fields itself', () => {
    const nodes = fixture<INodes>(nodesJson);
    // The server refuses the master (say, a rule the panel does not know of): no command.
    nodes.nodes[0].shell = false;
    nodes.nodes[0].no_shell_reason = 'refused by the server';
    const body = drawNodes(nodes);
    const master = all(body, '.jp-HailNode')[0];
    expect(master.dataset.shell).toBe('false');
    expect(master.querySelector('.jp-HailNodeCommand')).toBeNull();
    expect(one(master, '.jp-HailMuted').title).toBe('refused by the server');
  });

  it('shows no node list when there is no configured cluster', () => {
    const nodes = fixture<INodes>(nodesJson);
    nodes.available = false;
    expect(drawNodes(nodes).querySelector('.jp-HailNode')).toBeNull();
  });
});

describe('Sessions section', () => {
  it('lists the sessions, marks the own one and offers to delete it', () => {
    const data = fixture<ISessions>(sessionsJson);
    const s = data.sessions[0];
    const actions = recordingActions();
    const body = draw(renderSessions(data, actions));
    const row = one(body, `.jp-HailSession[data-session-id="${s.id}"]`);
    expect(row.dataset.own).toBe('true');
    expect(one(row, '.jp-HailSession-name').textContent).toBe(
      `#${s.id} ${data.session_name}`
    );
    expect(one(row, '.jp-HailBadge').textContent).toBe(s.state);
    expect(one(row, '.jp-HailOwn').textContent).toBe(' yours');
    one(row, 'button[data-action="delete-session"]').click();
    expect(actions.calls).toEqual([['deleteSession', s.id, s.name]]);
  });

  it('says where the Spark UI or driver log is on EMR Serverless', () => {
    const data = fixture<ISessions>(serverlessSessionsJson);
    const s = data.sessions[0];
    const body = draw(renderSessions(data, recordingActions()));
    const row = one(body, `.jp-HailSession[data-session-id="${s.id}"]`);
    expect(s.spark_ui_note).toBeTruthy();
    expect(one(row, '[data-field="spark-ui-note"]').textContent).toBe(
      s.spark_ui_note
    );
    const plain = draw(
      renderSessions(fixture<ISessions>(sessionsJson), recordingActions())
    );
    expect(plain.querySelector('[data-field="spark-ui-note"]')).toBeNull();
  });

  it('offers no Delete for a session of someone else', () => {
    const data = fixture<ISessions>(sessionsJson);
    data.sessions[0].own = false;
    const body = draw(renderSessions(data, recordingActions()));
    expect(body.querySelector('[data-action="delete-session"]')).toBeNull();
    expect(body.querySelector('.jp-HailOwn')).toBeNull();
  });
});

describe('Running section', () => {
  it('shows each running statement with its progress, Spark jobs and stages', () => {
    const data = fixture<IProgress>(progressJson);
    const session = data.sessions[0];
    const st = session.statements[0];
    const body = draw(renderRunning(data));
    const row = one(
      body,
      `.jp-HailStatement[data-statement-id="${st.id}"][data-session-id="${session.session_id}"]`
    );
    expect(one(row, '.jp-HailCode').textContent).toBe(
      'sc.parallelize(range(4), 4).map(lambda x: time.sleep(8) or x).count()'
    );
    const pct = String(Math.round(st.progress * 100));
    expect(one(row, '[role="progressbar"]').getAttribute('aria-valuenow')).toBe(
      pct
    );
    expect(one(row, '.jp-HailProgress-text').textContent).toBe(`${pct}%`);
    const job = st.jobs[0];
    const jobRow = one(row, '.jp-HailJob');
    expect(jobRow.textContent).toContain(
      `Job ${job.jobId} RUNNING: ${job.numCompletedTasks}/4 tasks`
    );
    expect(one(jobRow, '.jp-HailStage').textContent).toContain(
      `Stage ${job.stages[0].stageId} ACTIVE: ${job.stages[0].numCompleteTasks}/4`
    );
  });

  it('says when nothing runs', () => {
    const data = fixture<IProgress>(progressJson);
    data.sessions[0].statements = [];
    data.transfers = [];
    expect(draw(renderRunning(data)).textContent).toBe('Nothing running.');
  });

  it('shows a transfer a kernel publishes: what moves, bytes, rows, rate, time left', () => {
    const data = fixture<IProgress>(progressJson);
    const t = data.transfers[0];
    const body = draw(renderRunning(data));
    const row = one(
      body,
      `.jp-HailTransfer[data-transfer="${t.name}"][data-kernel-pid="${t.kernel_pid}"]`
    );
    expect(one(row, '.jp-HailRow').textContent).toBe(
      'Pulling gwas through Livy · analysis.ipynb'
    );
    expect(one(row, '[role="progressbar"]').getAttribute('aria-valuenow')).toBe(
      '40'
    );
    expect(one(row, '.jp-HailTransfer-detail').textContent).toBe(
      '16.0 MB of 40.0 MB · 2,000,000 rows · 8.0 MB/s · 3 s left'
    );
    // Listed before the statements, and still shown when Livy does not answer.
    expect(body.firstElementChild).toBe(row);
    data.error = 'Livy at http://127.0.0.1:8998 did not answer';
    const down = draw(renderRunning(data));
    expect(all(down, '.jp-HailTransfer')).toHaveLength(1);
    expect(one(down, '.jp-HailError').textContent).toContain('did not answer');
  });

  it('shows a staged push before its total is known, and a record it could not read', () => {
    const data = fixture<IProgress>(progressJson);
    data.transfers = [
      {
        ...data.transfers[0],
        direction: 'push',
        transport: 'staged',
        total_bytes: null,
        rows: null,
        rate: null,
        eta: null,
        notebook: null
      }
    ];
    data.transfers_error = '123.json: not a transfer record';
    expect(
      draw(
        renderRunning({
          ...data,
          transfers: [
            { ...data.transfers[0], eta: 0.3, rate: 5e6, total_bytes: 20e6 }
          ]
        })
      ).textContent
    ).toContain('5.0 MB/s · 1 s left');
    const body = draw(renderRunning(data));
    const row = one(body, '.jp-HailTransfer[data-direction="push"]');
    expect(one(row, '.jp-HailRow').textContent).toBe(
      'Pushing gwas staged as Parquet'
    );
    expect(row.querySelector('[role="progressbar"]')).toBeNull();
    expect(one(row, '.jp-HailTransfer-detail').textContent).toBe(
      '16.0 MB · … MB/s'
    );
    expect(one(body, '.jp-HailError').textContent).toBe(
      '123.json: not a transfer record'
    );
  });
});

describe('Plots section', () => {
  it('shows a tile per plot that opens it', () => {
    const data = fixture<IPlots>(plotsJson);
    const actions = recordingActions();
    const body = draw(renderPlots(data, actions));
    expect(body.textContent).toContain('analysis/plots/');
    const tiles = all(body, '.jp-HailPlot');
    expect(tiles.map(t => t.dataset.plot).sort()).toEqual([
      'qq.png',
      'show-20261121-101500-1-pca.html'
    ]);
    const png = tiles.find(t => t.dataset.plot === 'qq.png') as HTMLElement;
    expect(one(png, '.jp-HailPlot-kind').textContent).toBe('IMAGE');
    expect(png.textContent).toContain('2 KiB');
    png.click();
    expect(actions.calls).toEqual([['openPlot', 'analysis', 'qq.png']]);
  });
});

describe('Backup section', () => {
  it('lists the first pending files and says how many more there are', () => {
    const data = fixture<IBackup>(syncJson);
    const status = data.status!;
    expect(status.pending_count).toBe(11);
    const body = draw(renderBackup(data, false, recordingActions()));
    expect(one(body, '[data-field="pending"]').textContent).toBe(
      'Pending files: 11'
    );
    const listed = all(body, '[data-field="pending-files"] li').map(
      li => li.textContent
    );
    expect(listed).toEqual(status.pending.slice(0, PENDING_SHOWN));
    expect(listed.length).toBe(8);
    expect(one(body, '[data-field="more-files"]').textContent).toBe(
      'and 3 more files'
    );
    expect(body.textContent).toContain('s3://lab-bucket/alice/');
    expect(one(body, '[data-field="last-backup"]').textContent).toBe(
      'Last backup: never'
    );
  });

  it.each([
    [5, 1500, 'and 1495 more files'], // the server cut its own list at 5
    [3, 3, null] // every pending file listed: nothing more to say
  ])(
    'with %i of %i pending files listed says %s',
    (listed: number, count: number, more: string | null) => {
      const data = fixture<IBackup>(syncJson);
      data.status!.pending = data.status!.pending.slice(0, listed);
      data.status!.pending_count = count;
      const body = draw(renderBackup(data, false, recordingActions()));
      expect(all(body, '[data-field="pending-files"] li').length).toBe(listed);
      const shown = body.querySelector('[data-field="more-files"]');
      expect(shown?.textContent ?? null).toBe(more);
    }
  );

  it('counts conflicts and errors beyond those listed', () => {
    const data = fixture<IBackup>(syncJson);
    data.status!.conflicts = Array.from({ length: 10 }, (_, i) => ({
      path: `nb-${i}.ipynb`,
      conflict_copy: `nb-${i}.conflict.ipynb`,
      time: '2026-11-21T10:00:00+00:00',
      reason: 'changed on both sides'
    }));
    data.status!.errors = Array.from({ length: 7 }, (_, i) => ({
      path: `f${i}`,
      error: 'denied'
    }));
    const body = draw(renderBackup(data, false, recordingActions()));
    expect(one(body, '[data-field="conflicts"]').textContent).toBe(
      'Conflicts: 10'
    );
    expect(one(body, '[data-field="more-conflicts"]').textContent).toBe(
      'and 2 more conflicts'
    );
    expect(all(body, '.jp-HailError').length).toBe(5);
    expect(one(body, '[data-field="more-errors"]').textContent).toBe(
      'and 2 more errors'
    );
  });

  it('offers Back up now and Restore, disabled while one runs', () => {
    const actions = recordingActions();
    const idle = draw(renderBackup(fixture<IBackup>(syncJson), false, actions));
    const backup = one(
      idle,
      'button[data-action="backup"]'
    ) as HTMLButtonElement;
    expect(backup.disabled).toBe(false);
    backup.click();
    (one(idle, 'button[data-action="restore"]') as HTMLButtonElement).click();
    expect(actions.calls).toEqual([
      ['sync', 'backup'],
      ['sync', 'restore']
    ]);
    const busy = draw(renderBackup(fixture<IBackup>(syncJson), true, actions));
    expect(
      (one(busy, 'button[data-action="backup"]') as HTMLButtonElement).disabled
    ).toBe(true);
  });
});

describe('Jobs section', () => {
  it('lists the jobs submitted from here, newest first, with their state', () => {
    const data = fixture<IJobs>(jobsJson);
    const body = draw(renderJobs(data));
    const rows = all(body, '.jp-HailJobRow');
    expect(rows.map(r => r.dataset.jobId)).toEqual([
      '00fjobrun1234',
      'batch-7'
    ]);
    expect(rows[0].textContent).toContain('gwas emr-serverless 00fjobrun1234');
    expect(one(rows[0], '.jp-HailBadge').textContent).toBe('running');
    expect(one(rows[1], '.jp-HailBadge').textContent).toBe('succeeded');
  });

  it('says when there are none', () => {
    const data = fixture<IJobs>(jobsJson);
    data.jobs = [];
    expect(draw(renderJobs(data)).textContent).toContain(
      'No jobs submitted from here yet'
    );
  });
});
