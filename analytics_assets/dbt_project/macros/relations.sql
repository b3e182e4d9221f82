{#- A child table of a raw table (`<parent>__<list>`, e.g. feature_flags__owners), which dlt
    creates only once some row has data for it: the table when it exists, else an empty typed
    placeholder, so the models build on a new or small organisation. It is read through its
    parent source, whose Dagster asset loads it. `columns` maps name -> SQL type. -#}
{% macro optional_child_relation(parent, list_name, columns) -%}
  {%- set found = none -%}
  {%- if execute -%}
    {%- set found = adapter.get_relation(parent.database, parent.schema, parent.identifier ~ '__' ~ list_name) -%}
  {%- endif -%}
  {%- if found is not none -%}
    {{ found }}
  {%- else -%}
    (select {% for name, type in columns.items() %}cast(null as {{ type }}) as {{ adapter.quote(name) if name in ('user', 'timestamp') else name }}{{ ", " if not loop.last }}{% endfor %} where 1 = 0)
  {%- endif -%}
{%- endmacro %}

{#- string_agg with a separator, ordered. -#}
{% macro ordered_string_agg(expression, separator=', ') -%}
  {{ return(adapter.dispatch('ordered_string_agg', 'analytics_assets')(expression, separator)) }}
{%- endmacro %}
{% macro default__ordered_string_agg(expression, separator) -%}
  string_agg({{ expression }}, '{{ separator }}' order by {{ expression }})
{%- endmacro %}
{% macro snowflake__ordered_string_agg(expression, separator) -%}
  listagg({{ expression }}, '{{ separator }}') within group (order by {{ expression }})
{%- endmacro %}
