import React from 'react';
import { fireEvent, render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import type { DataSource } from '../datasource';
import { PIQuery } from '../types';
import { AnnotationQueryEditor, QueryEditor } from './QueryEditor';

function setup(query: Partial<PIQuery>, Editor = QueryEditor) {
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  const full: PIQuery = { refId: 'A', ...query };
  const utils = render(<Editor datasource={{} as DataSource} query={full} onChange={onChange} onRunQuery={onRunQuery} />);
  return { ...utils, onChange, onRunQuery, query: full };
}

/** Labels of the query inputs shown, in page order (labels tied to an input by id; the type radios are not). */
function shownFields(): string[] {
  return Array.from(document.querySelectorAll<HTMLLabelElement>('label[for^="pi-"]'))
    .filter((label) => document.getElementById(label.htmlFor)?.tagName === 'INPUT')
    .map((label) => label.textContent ?? '');
}

describe('QueryEditor fields per query type', () => {
  it('search shows every message filter', () => {
    setup({ queryType: 'search' });
    expect(shownFields()).toEqual(['Recipient', 'Sender', 'Domain', 'Subject', 'Queue ID', 'Status', 'DSN', 'Host', 'Limit']);
  });

  it('a query without a type is a search', () => {
    setup({});
    expect(screen.getByRole('radio', { name: 'Message search' })).toBeChecked();
    expect(shownFields()).toContain('Recipient');
  });

  it('trace shows queue ID and host', () => {
    setup({ queryType: 'trace' });
    expect(shownFields()).toEqual(['Queue ID', 'Host']);
  });

  it('stats shows the statistic, domain, host, interval and limit', () => {
    setup({ queryType: 'stats' });
    expect(shownFields()).toEqual(['Statistic', 'Domain', 'Host', 'Interval', 'Limit']);
    expect(screen.getByText('volume')).toBeInTheDocument(); // the default statistic
  });

  it('changing the type switches the fields when the parent re-renders with the new model', () => {
    const { onChange, onRunQuery, rerender } = setup({ queryType: 'search', domain: 'example.com' });
    fireEvent.click(screen.getByRole('radio', { name: 'Message trace' }));
    expect(onChange).toHaveBeenCalledWith({ refId: 'A', queryType: 'trace', domain: 'example.com' });
    expect(onRunQuery).toHaveBeenCalled();
    rerender(
      <QueryEditor datasource={{} as DataSource} query={onChange.mock.calls[0][0]} onChange={onChange} onRunQuery={onRunQuery} />
    );
    expect(shownFields()).toEqual(['Queue ID', 'Host']);
  });
});

describe('QueryEditor edits', () => {
  it('a text field sets its key and runs the query on blur', () => {
    const { onChange, onRunQuery } = setup({ queryType: 'search', status: ['sent'] });
    const input = screen.getByLabelText('Queue ID', { selector: 'input' });
    fireEvent.change(input, { target: { value: '4Bx3Kp1Zz9z' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'search', status: ['sent'], queueId: '4Bx3Kp1Zz9z' });
    expect(onRunQuery).not.toHaveBeenCalled();
    fireEvent.blur(input);
    expect(onRunQuery).toHaveBeenCalledTimes(1);
  });

  it('template variables are kept as typed', () => {
    const { onChange } = setup({ queryType: 'search' });
    fireEvent.change(screen.getByLabelText('Domain', { selector: 'input' }), { target: { value: '$domain' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'search', domain: '$domain' });
  });

  it('clearing a text field drops the value', () => {
    const { onChange } = setup({ queryType: 'search', sender: 'a@b' });
    fireEvent.change(screen.getByLabelText('Sender', { selector: 'input' }), { target: { value: '' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'search', sender: undefined });
  });

  it('limit is a positive whole number or nothing', () => {
    const { onChange } = setup({ queryType: 'stats' });
    const input = screen.getByLabelText('Limit', { selector: 'input' });
    fireEvent.change(input, { target: { value: '25' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'stats', limit: 25 });
    fireEvent.change(input, { target: { value: '0' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'stats', limit: undefined });
  });

  it('interval goes to the interval key', () => {
    const { onChange } = setup({ queryType: 'stats', stat: 'rates' });
    fireEvent.change(screen.getByLabelText('Interval', { selector: 'input' }), { target: { value: '$__interval' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'stats', stat: 'rates', interval: '$__interval' });
  });

  it('choosing a statistic sets stat and runs the query', async () => {
    const user = userEvent.setup();
    const { onChange, onRunQuery } = setup({ queryType: 'stats' });
    await user.click(screen.getByLabelText('Statistic', { selector: 'input' }));
    await user.click(await screen.findByText('tls-coverage'));
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'stats', stat: 'tls-coverage' });
    expect(onRunQuery).toHaveBeenCalled();
  });

  it('status is a multi-select: picking one adds it to the list', async () => {
    const user = userEvent.setup();
    const { onChange } = setup({ queryType: 'search', status: ['sent'] });
    await user.click(screen.getByLabelText('Status', { selector: 'input' }));
    await user.click(await screen.findByText('bounced'));
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'search', status: ['sent', 'bounced'] });
  });

  it('status accepts a template variable as a custom value', async () => {
    const user = userEvent.setup();
    const { onChange } = setup({ queryType: 'search' });
    await user.type(screen.getByLabelText('Status', { selector: 'input' }), '$status{Enter}');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'A', queryType: 'search', status: ['$status'] });
  });
});

describe('AnnotationQueryEditor', () => {
  it('shows domain and host only, no query-type choice, and keeps queryType annotations', () => {
    const { onChange } = setup({ refId: 'Anno' }, AnnotationQueryEditor);
    expect(screen.queryByRole('radio')).toBeNull();
    expect(shownFields()).toEqual(['Domain', 'Host']);
    fireEvent.change(screen.getByLabelText('Domain', { selector: 'input' }), { target: { value: 'example.net' } });
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'Anno', queryType: 'annotations', domain: 'example.net' });
  });
});
