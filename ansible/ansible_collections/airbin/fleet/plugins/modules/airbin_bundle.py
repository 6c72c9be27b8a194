#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: airbin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: airbin_bundle
short_description: Install, upgrade, verify or remove an airbin bundle on a node
version_added: "1.0.0"
description:
  - Runs an airbin offline-installer bundle (C(.bin)) that is already on the node and maps
    the JSON document it prints onto Ansible's contract.
  - I(state=present) installs or upgrades; the bundle's journal decides what is done, so
    C(changed) is true only when a step ran.
  - I(state=absent) uninstalls (where the bundle has uninstall steps); I(state=verified)
    runs the drift check (C(status --verify)) and fails when the host no longer matches.
  - Check mode runs C(plan) (nothing runs; C(changed) says whether a step would); diff mode
    shows the plan's changes (versions, the steps that would run, the parameters).
  - Every value in I(params) reaches the bundle on its standard input (C(--set-from -)),
    never on a command line; the values of parameters the bundle declares secret are
    masked in everything the module returns and logs.
  - Sets the fact C(airbin_installed), the installed record of each bundle by name.
options:
  path:
    description: The bundle on the node.
    type: path
    required: true
  state:
    description: What the node should be.
    type: str
    choices: [present, absent, verified]
    default: present
  config:
    description: The product's config file on the node (C(--config)).
    type: path
  params:
    description:
      - Parameter values by name (or config key), as C(--set NAME=VALUE) would give them.
      - Values of parameters the bundle declares secret are never logged nor returned.
    type: dict
    default: {}
  role:
    description: This node's role; by default the bundle finds it in the config's node lists.
    type: str
    choices: [single, primary, secondary, worker]
  force:
    description: Redo every step (C(--force)); also what a reinstall over hotfixes needs.
    type: bool
    default: false
  extra_args:
    description: More arguments for the bundle's command, such as C([--engine, docker]).
    type: list
    elements: str
    default: []
  shell:
    description: The shell that runs the bundle.
    type: str
    default: sh
notes:
  - The bundle must be on the node; the C(airbin.fleet.airbin) role copies it there.
  - Supports check mode and diff mode.
author:
  - airbin contributors (@airbin)
'''

EXAMPLES = r'''
- name: Install or upgrade compass
  airbin.fleet.airbin_bundle:
    path: /var/tmp/airbin/compass-component-v2.7.3-amd64.bin
    config: /var/tmp/airbin/config
    params:
      cluster_name: prod
      admin_password: "{{ vault_admin_password }}"

- name: Check that the host still matches what was installed
  airbin.fleet.airbin_bundle:
    path: /var/tmp/airbin/compass-component-v2.7.3-amd64.bin
    state: verified

- name: Remove it
  airbin.fleet.airbin_bundle:
    path: /var/tmp/airbin/compass-component-v2.7.3-amd64.bin
    state: absent
'''

RETURN = r'''
bundle:
  description: The bundle's name, version and arch.
  returned: always
  type: dict
steps:
  description: Each step with its state (done, already-done, failed, not-run; in check mode pending, done or redo).
  returned: always
  type: list
  elements: dict
ran:
  description: The names of the steps that ran (in check mode, that would run).
  returned: always
  type: list
  elements: str
exit_code:
  description: The bundle's exit code.
  returned: always
  type: int
exit_class:
  description: The error's class (step-failed, disk-space, host-not-ready, drift, ...) when the run failed.
  returned: failure
  type: str
log:
  description: The run's log on the node.
  returned: when the bundle wrote one
  type: str
change:
  description: What kind of change the run was (install, same, upgrade, hotfix, reinstall, downgrade).
  returned: state=present
  type: dict
verify:
  description: The drift check's findings.
  returned: state=verified
  type: dict
document:
  description: The whole JSON document the bundle printed (secrets masked).
  returned: always
  type: dict
ansible_facts:
  description: Facts set by the module.
  returned: always
  type: dict
  contains:
    airbin_installed:
      description: The installed record of each bundle, by name (empty where nothing is installed).
      type: dict
'''

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text


def run_bundle(module, command, values=None):
    """Runs `shell path COMMAND --json`; the values go on stdin. Returns (rc, document)."""
    p = module.params
    argv = [p['shell'], p['path']] + command + ['--json']
    data = None
    if values:
        argv += ['--set-from', '-']
        data = ''.join('%s=%s\n' % (k, v) for k, v in values.items())
    rc, out, err = module.run_command(argv, data=data, binary_data=True, environ_update={'LC_ALL': 'C'})
    try:
        doc = json.loads(out)
    except ValueError:
        module.fail_json(msg='the bundle printed no JSON document (exit %d): %s' % (rc, to_text(err).strip()[-2000:]),
                         exit_code=rc, cmd=' '.join(argv))
    return rc, doc


def values_for(module, info):
    """The params as strings; the secret ones masked from every output."""
    secret = set()
    for param in info.get('parameters') or []:
        if param.get('secret'):
            secret.add(param.get('name'))
            if param.get('key'):
                secret.add(param.get('key'))
    values = {}
    for key, value in (module.params['params'] or {}).items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        text = to_text(value)
        if '\n' in text:
            module.fail_json(msg='params.%s: a value is one line' % key)
        if key in secret and text:
            module.no_log_values.add(text)
        values[key] = text
    return values


def common_args(module, install=True):
    p = module.params
    args = []
    if p['config']:
        args += ['--config', p['config']]
    if install and p['role']:
        args += ['--role', p['role']]
    return args


def installed_facts(module, info):
    rc, doc = run_bundle(module, ['status'])
    name = (info.get('bundle') or {}).get('name', 'bundle')
    record = doc.get('installed') or {}
    return {'airbin_installed': {name: record}}


def fail(module, rc, doc, result):
    error = doc.get('error') or {}
    result.update(msg=error.get('message') or 'the bundle exited %d' % rc, exit_class=error.get('class'))
    module.fail_json(**result)


def result_of(rc, doc):
    steps = doc.get('steps') or []
    return {
        'changed': any(s.get('state') == 'done' for s in steps),
        'steps': steps,
        'ran': [s.get('name') for s in steps if s.get('state') == 'done'],
        'exit_code': rc,
        'log': doc.get('log'),
        'document': doc,
    }


def planned(module, info, values, uninstall=False):
    """Check mode: what `plan` says would run, and the diff."""
    command = ['plan'] + (['--uninstall'] if uninstall else []) + common_args(module, not uninstall)
    if module.params['force']:
        command.append('--force')
    rc, doc = run_bundle(module, command + module.params['extra_args'], values)
    plan = doc.get('plan') or {}
    steps = plan.get('steps') or doc.get('steps') or []
    would = [s.get('name') for s in steps if s.get('state') in ('pending', 'redo')]
    result = {'changed': bool(would), 'steps': steps, 'ran': would, 'exit_code': rc, 'document': doc,
              'change': plan.get('change')}
    if rc != 0:
        fail(module, rc, doc, result)
    installed = plan.get('installed') or {}
    before = {'version': installed.get('version'), 'hotfixes': installed.get('hotfixes')}
    after = {'version': (info.get('bundle') or {}).get('version'), 'steps': would,
             'parameters': dict((p.get('name'), p.get('value')) for p in plan.get('parameters') or [])}
    if uninstall:
        after = {'version': None, 'steps': would}
    result['diff'] = {'before': json.dumps(before, indent=2, sort_keys=True) + '\n',
                      'after': json.dumps(after, indent=2, sort_keys=True) + '\n',
                      'before_header': 'installed', 'after_header': 'this bundle'}
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent', 'verified']),
            config=dict(type='path'),
            params=dict(type='dict', default={}),
            role=dict(type='str', choices=['single', 'primary', 'secondary', 'worker']),
            force=dict(type='bool', default=False),
            extra_args=dict(type='list', elements='str', default=[]),
            shell=dict(type='str', default='sh'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    rc, info = run_bundle(module, ['info'])
    if rc != 0:
        fail(module, rc, info, {'changed': False, 'exit_code': rc, 'document': info})
    values = values_for(module, info)
    bundle = info.get('bundle') or {}

    if p['state'] == 'verified':
        rc, doc = run_bundle(module, ['status', '--verify'] + p['extra_args'])
        result = {'changed': False, 'steps': doc.get('steps') or [], 'ran': [], 'exit_code': rc, 'bundle': bundle,
                  'verify': doc.get('verify'), 'document': doc, 'ansible_facts': installed_facts(module, info)}
        if rc != 0:
            fail(module, rc, doc, result)
        module.exit_json(**result)

    if p['state'] == 'absent':
        facts = installed_facts(module, info)
        if not facts['airbin_installed'].get(bundle.get('name')):
            module.exit_json(changed=False, steps=[], ran=[], exit_code=0, bundle=bundle, document={}, ansible_facts=facts,
                             msg='%s is not installed' % bundle.get('name'))
        if module.check_mode:
            result = planned(module, info, values, uninstall=True)
            result.update(changed=True, bundle=bundle, ansible_facts=facts)
            module.exit_json(**result)
        rc, doc = run_bundle(module, ['uninstall', '--yes'] + common_args(module, False) + p['extra_args'], values)
        result = result_of(rc, doc)
        result.update(changed=rc == 0 or result['changed'], bundle=bundle, ansible_facts=installed_facts(module, info))
        if rc != 0:
            fail(module, rc, doc, result)
        module.exit_json(**result)

    if module.check_mode:
        result = planned(module, info, values)
        result.update(bundle=bundle, ansible_facts=installed_facts(module, info))
        module.exit_json(**result)
    command = ['install', '--yes'] + common_args(module) + (['--force'] if p['force'] else []) + p['extra_args']
    rc, doc = run_bundle(module, command, values)
    result = result_of(rc, doc)
    result.update(bundle=bundle, change=doc.get('change'), ansible_facts=installed_facts(module, info))
    if module._diff:
        before = (doc.get('change') or {}).get('installed')
        result['diff'] = {'before': 'version: %s\n' % before, 'after': 'version: %s\nran: %s\n' % (bundle.get('version'), ', '.join(result['ran']))}
    if rc != 0:
        fail(module, rc, doc, result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
