import React from 'react';
import { DataSourceSettings } from '@grafana/data';
import { fireEvent, render, screen } from '@testing-library/react';

import { PIOptions, PISecureJsonData } from '../types';
import { ConfigEditor } from './ConfigEditor';

type Settings = DataSourceSettings<PIOptions, PISecureJsonData>;

function setup(patch: Partial<Settings> = {}) {
  const options = {
    id: 1,
    uid: 'pi',
    name: 'Postfix Insights',
    type: 'postfixinsights-messages-datasource',
    access: 'proxy',
    url: '',
    jsonData: { url: 'http://127.0.0.1:8080' },
    secureJsonFields: {},
    ...patch,
  } as Settings;
  const onOptionsChange = jest.fn();
  render(<ConfigEditor options={options} onOptionsChange={onOptionsChange} />);
  return { options, onOptionsChange, last: (): Settings => onOptionsChange.mock.calls.at(-1)[0] };
}

describe('ConfigEditor', () => {
  it('shows the URL and writes it to jsonData.url', () => {
    const { last } = setup();
    const url = screen.getByLabelText('URL', { selector: 'input' });
    expect(url).toHaveValue('http://127.0.0.1:8080');
    fireEvent.change(url, { target: { value: ' http://mail-stats.internal:8080 ' } });
    expect(last().jsonData).toEqual({ url: 'http://mail-stats.internal:8080' });
  });

  it('writes the token to secureJsonData only, never to jsonData', () => {
    const { last } = setup();
    fireEvent.change(screen.getByLabelText('API token', { selector: 'input' }), { target: { value: 's3cret' } });
    expect(last().secureJsonData).toEqual({ token: 's3cret' });
    expect(JSON.stringify(last().jsonData)).not.toContain('s3cret');
  });

  it('a saved token shows as configured, and Reset clears it', () => {
    const { last } = setup({ secureJsonFields: { token: true } });
    const input = screen.getByLabelText('API token', { selector: 'input' });
    expect(input).toBeDisabled();
    expect(input).toHaveValue('configured');
    fireEvent.click(screen.getByRole('button', { name: 'Reset' }));
    expect(last().secureJsonFields).toEqual({ token: false });
    expect(last().secureJsonData).toEqual({ token: '' });
  });
});
